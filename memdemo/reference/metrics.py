"""Similarity to the training set, as the AMG paper defines it (Eq. 8–9), plus the G_dup caption rule.

The formulas use only operators shared by NumPy arrays and torch tensors, so the sampler can differentiate them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

NL2_ALPHA = 0.5
NL2_K = 50
NL2_COPY_THRESHOLD = 1.4  # AMG paper, CIFAR-10: a generation with nL2 < 1.4 is a copy
NL2_STRICT_THRESHOLD = 1.6
DUPLICATE_CAPTION_MIN_COUNT = 20  # official AMG-SD: the top caption must occur more than 20 times


def nl2_denominator(distances, alpha: float = NL2_ALPHA, k: int = NL2_K):
    """Eq. 8's denominator: α·mean ℓ2 to the k nearest (ascending `distances`, last axis)."""
    return (alpha * distances[..., :k].mean(-1)).clip(min=1e-12)


def normalized_l2(distances, alpha: float = NL2_ALPHA, k: int = NL2_K):
    """Eq. 8 ratio: ℓ2 to the nearest over α·mean ℓ2 to the k nearest (ascending `distances`, last axis)."""
    return distances[..., 0] / nl2_denominator(distances, alpha, k)


def pixel_similarity(nl2):
    """σ_pix = 1 − nL2/2: Eq. 8 mapped to a positive, higher-is-closer scale (docs/decisions.md §1)."""
    return 1 - nl2 / 2


def cosine(a, b):
    """Cosine of the last axes (Eq. 9 on unnormalised descriptors)."""
    dot = (a * b).sum(-1)
    norms = ((a * a).sum(-1) * (b * b).sum(-1)) ** 0.5
    return dot / norms.clip(min=1e-12)


def most_duplicated_caption(
    captions: Sequence[str], copies: Sequence[int], min_count: int = DUPLICATE_CAPTION_MIN_COUNT
) -> str | None:
    """G_dup's y_N as in the official AMG code: the commonest neighbour caption, if it occurs > min_count times.

    The index stores each unique image once with its copy count, so counts are weighted by copies: the same tally
    as over a non-deduplicated neighbour list.
    """
    tally: Counter[str] = Counter()
    for caption, count in zip(captions, copies, strict=True):
        tally[caption] += int(count)
    if not tally:
        return None
    caption, count = tally.most_common(1)[0]
    return caption if count > min_count else None
