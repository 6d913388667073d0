"""The verdict on every image the page shows: the scoring descriptor, which guidance never follows
(docs/decisions.md §9), against its calibrated τ, with its nearest training image and, for a training caption, the
similarity to the prompt's own training image. Every sentence about copies is built from a Judgement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memdemo.data.emojimem import EmojiMem
from memdemo.evaluation.scoring import CopydetScorer
from memdemo.reference.features import embed_images
from memdemo.reference.metrics import cosine


@dataclass(frozen=True)
class Judgement:
    """One image judged: the scorer's cosine to its nearest training image, τ, and the prompt's own image."""

    similarity: float
    threshold: float
    nearest_id: int
    nearest_caption: str
    own_id: int | None = None
    own_similarity: float | None = None

    @property
    def copy(self) -> bool:
        return self.similarity > self.threshold

    @property
    def nearest_is_own(self) -> bool:
        return self.own_id is not None and self.nearest_id == self.own_id

    def word(self) -> str:
        return "COPY" if self.copy else "not a copy"

    def comparison(self) -> str:
        sign = ">" if self.copy else "≤"
        return f"copydet {self.similarity:.2f} {sign} τ = {self.threshold:.2f}"

    def nearest(self) -> str:
        own = " (the prompt's own training image)" if self.nearest_is_own else ""
        return f"“{self.nearest_caption}”{own}"


class Judge:
    """Judges uint8 images with the scoring descriptor and knows each training caption's own image."""

    def __init__(self, scorer: CopydetScorer, dataset: EmojiMem) -> None:
        self.scorer = scorer
        self.images = dataset.images
        self.own_ids = {record.caption: record.id for record in dataset.records if record.split == "train"}
        self.rows = {entry.id: row for row, entry in enumerate(scorer.index.entries)}

    @property
    def threshold(self) -> float:
        return self.scorer.threshold

    def own_id(self, prompt: str) -> int | None:
        """The id of the training image whose caption is exactly `prompt`, if any."""
        return self.own_ids.get(prompt)

    def own_image(self, prompt: str) -> np.ndarray | None:
        own = self.own_id(prompt)
        return None if own is None else self.images[own]

    def nearest_image(self, judgement: Judgement) -> np.ndarray:
        return self.images[judgement.nearest_id]

    def judge(self, image: np.ndarray, prompt: str) -> Judgement:
        """The scorer's verdict on one uint8 (S, S, 3) image for a run of `prompt`."""
        embedding = embed_images(self.scorer.index.feature, image[None])
        neighbours = self.scorer.index.search(embedding, 1)
        own = self.own_id(prompt)
        own_similarity = None
        if own is not None and own in self.rows:
            own_similarity = float(cosine(embedding[0], self.scorer.training_embeddings[self.rows[own]]))
        return Judgement(
            float(neighbours.distances[0, 0]),
            self.threshold,
            int(neighbours.ids[0, 0]),
            str(neighbours.captions[0][0]),
            own,
            own_similarity,
        )


def describe(judgement: Judgement | None, stage: str) -> str:
    """The verdict line under an image. `stage`: "final", "live" (the current x̂0, provisional) or "stopped"."""
    if judgement is None:
        return "No copy detector for this model: copies are not judged."
    text = f"**{judgement.word()}** — {judgement.comparison()}; nearest {judgement.nearest()}"
    if stage == "final":
        return text
    prefix = "stopped: last x̂0, no final verdict" if stage == "stopped" else "current x̂0, provisional"
    return f'<span style="opacity:0.55">{prefix} — {text}</span>'


def own_line(baseline: Judgement | None, mitigated: Judgement | None) -> str:
    """Both images' similarity to the prompt's own training image, or why there is none."""
    if baseline is None or mitigated is None:
        return ""
    if baseline.own_id is None:
        return "The prompt is not a training caption: there is no own training image to compare with."
    return (
        f"Similarity to the prompt's own training image (copydet): baseline {baseline.own_similarity:.2f}, "
        f"mitigated {mitigated.own_similarity:.2f} (τ = {baseline.threshold:.2f})."
    )


def verdict_sentence(label: str, judgement: Judgement | None) -> str:
    """'Baseline: COPY of “warning” (the prompt's own training image), copydet 0.97 > τ = 0.92.'"""
    if judgement is None:
        return f"{label}: not judged."
    what = f"COPY of {judgement.nearest()}" if judgement.copy else f"not a copy (nearest {judgement.nearest()})"
    return f"{label}: {what}, {judgement.comparison()}."
