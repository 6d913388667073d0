"""Pixel-level copy and cleanliness measures on 0–1 images (docs/evaluation.md): the error to a prompt's own training
image, the nearest training image in pixel space, and speckle, the mean |x − median3×3(x)|."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


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
