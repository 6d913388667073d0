"""Object-level scores of evaluated samples with the copydet descriptor (not the one G_sim follows): similarity to
the nearest training emoji, and the Fréchet distance of a set of samples to the training set in copydet space."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from memdemo.paths import indexes_dir
from memdemo.reference.features import embed_images
from memdemo.reference.index import ReferenceIndex

SCORE_FEATURE = "copydet"
INDEXES = indexes_dir(check=False)
SCORE_INDEX = INDEXES / "emojimem-copydet"
PIXEL_INDEX = INDEXES / "emojimem-pixel"
LOOSE_THRESHOLD = 0.5  # the convention for SSCD; copy rates are reported at both (docs/decisions.md §7)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) of Gaussians fitted to two sets of row vectors (FID's formula);
    Tr((Σ₁Σ₂)^½) is computed as Tr((Σ₁^½ Σ₂ Σ₁^½)^½), which is symmetric."""
    mean_gap = first.mean(0) - second.mean(0)
    cov_first, cov_second = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    root = _sqrt_psd(cov_first)
    cross = np.sqrt(np.linalg.eigvalsh(root @ cov_second @ root).clip(min=0)).sum()
    return float(mean_gap @ mean_gap + np.trace(cov_first) + np.trace(cov_second) - 2 * cross)


@dataclass(frozen=True)
class ObjectScores:
    """Per image: copydet cosine to the nearest training emoji, that emoji's id, and the embedding."""

    similarity: np.ndarray
    nearest_id: np.ndarray
    embeddings: np.ndarray


class CopydetScorer:
    """Scores images against a copydet index with the descriptor's calibrated copy threshold."""

    def __init__(self, index: ReferenceIndex, threshold: float) -> None:
        self.index = index
        self.threshold = threshold
        self.training_embeddings = index.vectors(np.arange(len(index)))

    @classmethod
    def load(cls, folder: Path = SCORE_INDEX) -> CopydetScorer:
        index = ReferenceIndex.load(folder, feature=SCORE_FEATURE)
        return cls(index, index.feature.threshold)

    def score(self, images: np.ndarray) -> ObjectScores:
        """uint8 (N, S, S, 3) images → their object-level scores."""
        embeddings = embed_images(self.index.feature, images)
        neighbours = self.index.search(embeddings, 1)
        return ObjectScores(neighbours.distances[:, 0], neighbours.ids[:, 0], embeddings)

    def frechet_to_training(self, embeddings: np.ndarray) -> float:
        """Fréchet distance of a group of sample embeddings to the unique training emoji (a quality proxy)."""
        return frechet_distance(embeddings, self.training_embeddings)


def pixel_scores(images: np.ndarray, index: ReferenceIndex) -> tuple[np.ndarray, np.ndarray]:
    """nL2 (AMG Eq. 8) of each saved image to its nearest training image, and that image's id."""
    matches = index.match(embed_images(index.feature, images))
    return np.array([m.nl2 for m in matches]), np.array([m.id for m in matches])


def read_images(paths: list[Path]) -> np.ndarray:
    """PNG files → uint8 (N, S, S, 3)."""
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])
