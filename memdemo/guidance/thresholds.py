"""AMG's similarity threshold λ_t (paper Eq. 10): the official SD curve, a constant, and EmojiMem's calibration."""

from __future__ import annotations

import math

import numpy as np

from memdemo.data.emojimem import EmojiMem
from memdemo.reference.features import embed_images
from memdemo.reference.index import ReferenceIndex

THRESHOLD_SCHEDULES = ("official", "constant", "emojimem-pixel", "calibrated")
# σ_pix that only 5% of never-trained (holdout) EmojiMem images reach against the training index;
# `calibrate_pixel_threshold()` recomputes it (0.451 → nL2 1.10, stricter than the paper's CIFAR 1.4).
EMOJIMEM_PIXEL_THRESHOLD = 0.45


def official_threshold(t: int) -> float:
    """λ_t = 0.3 + 0.1·exp(−0.005·t): official AMG-SD code for SSCD cosine (asy(t; 0.3, 0.4, 0.005))."""
    return 0.3 + 0.1 * math.exp(-0.005 * t)


def calibrated_threshold(t: int, tau: float) -> float:
    """λ_t = τ − 0.1 + 0.1·exp(−0.005·t): the official curve's shape, ending at a descriptor's calibrated τ at t = 0
    (lower, so guidance acts more readily, at high noise, where x̂0 is blurry and σ reads low)."""
    return tau - 0.1 + 0.1 * math.exp(-0.005 * t)


def threshold_at(schedule: str, t: int, constant: float = 0.3) -> float:
    """λ_t for a named schedule; `constant` is the constant one's value and the calibrated one's τ."""
    if schedule == "official":
        return official_threshold(t)
    if schedule == "constant":
        return constant
    if schedule == "emojimem-pixel":
        return EMOJIMEM_PIXEL_THRESHOLD
    if schedule == "calibrated":
        return calibrated_threshold(t, constant)
    raise ValueError(f"unknown threshold schedule {schedule!r}; choose one of: {', '.join(THRESHOLD_SCHEDULES)}")


def calibrate_pixel_threshold(dataset: EmojiMem, index: ReferenceIndex, quantile: float = 0.95) -> float:
    """The `quantile` of σ_pix = 1 − nL2/2 of holdout images against a training index: a false-positive budget."""
    holdout = dataset.images[dataset.ids("holdout")]
    similarities = [match.similarity for match in index.match(embed_images(index.feature, holdout))]
    return float(np.quantile(similarities, quantile))
