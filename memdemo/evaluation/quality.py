"""Pixel-level copy and cleanliness measures on 0–1 images (docs/training.md): the error to a prompt's own training
image, the nearest training image in pixel space, and speckle, the mean |x − median3×3(x)|."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from memdemo.backends.base import Backend
from memdemo.data.emojimem import EmojiMem
from memdemo.evaluation.batch_sampling import sample_cfg
from memdemo.evaluation.prompts import load_prompts


def as_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255


def mean_abs_error(images: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Per-image mean |x − y| on the 0–1 scale."""
    return (as_unit(images) - as_unit(references)).abs().flatten(1).mean(1).numpy()


def nearest_pixel(images: np.ndarray, training: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of the nearest training image by L2 distance in pixel space, and that image's mean |x − y|."""
    queries, keys = as_unit(images).flatten(1), as_unit(training).flatten(1)
    nearest = torch.cdist(queries, keys).argmin(1)
    return nearest.numpy(), (queries - keys[nearest]).abs().mean(1).numpy()


def median3x3(images: torch.Tensor) -> torch.Tensor:
    """Per-channel 3×3 median filter with replicated borders."""
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    patches = padded.unfold(2, 3, 1).unfold(3, 3, 1)
    return patches.reshape(*patches.shape[:4], 9).median(-1).values


def speckle(images: np.ndarray) -> np.ndarray:
    """Per-image mean |x − median3×3(x)|: isolated-pixel noise, near zero on the flat regions of a clean emoji."""
    unit = as_unit(images)
    return (unit - median3x3(unit)).abs().flatten(1).mean(1).numpy()


@dataclass
class CopyQuality:
    """The EmojiMem v2 targets' measures at one CFG scale, with the samples they were measured on."""

    cfg: float
    own_nn: float
    mae_own: float
    speckle_duplicated: float
    speckle_holdout: float
    copies: np.ndarray
    fresh: np.ndarray

    def row(self) -> dict:
        keys = ("cfg", "own_nn", "mae_own", "speckle_duplicated", "speckle_holdout")
        return {key: float(getattr(self, key)) for key in keys}


def measure_copies(
    backend: Backend, dataset: EmojiMem, cfg: float, steps: int, seeds: list[int], holdout: int | None = None
) -> CopyQuality:
    """Every duplicated caption and the first `holdout` holdout captions, each at `seeds`: own-NN in pixel space, the
    median MAE to the own training image, and median speckle over the training emoji's (duplicated and holdout)."""
    duplicated = load_prompts("duplicated")
    fresh_prompts = load_prompts("holdout", limit=holdout)
    pairs = [(p, seed) for seed in seeds for p in duplicated]
    copies = sample_cfg(backend, [p.text for p, _ in pairs], [s for _, s in pairs], cfg, steps)
    fresh_pairs = [(p, seed) for seed in seeds for p in fresh_prompts]
    fresh = sample_cfg(backend, [p.text for p, _ in fresh_pairs], [s for _, s in fresh_pairs], cfg, steps)
    train_ids = np.array(dataset.ids("train"))
    own = np.array([p.own_id for p, _ in pairs])
    nearest, _ = nearest_pixel(copies, dataset.images[train_ids])
    reference = float(np.median(speckle(dataset.images[train_ids])))
    return CopyQuality(
        cfg=cfg,
        own_nn=float(np.mean(train_ids[nearest] == own)),
        mae_own=float(np.median(mean_abs_error(copies, dataset.images[own]))),
        speckle_duplicated=float(np.median(speckle(copies))) / reference,
        speckle_holdout=float(np.median(speckle(fresh))) / reference,
        copies=copies,
        fresh=fresh,
    )
