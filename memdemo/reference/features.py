"""Image features for the reference index, by name: each maps images in [0, 1] to vectors, differentiably."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np
import torch

Metric = Literal["l2", "cosine"]


class Feature(Protocol):
    """A differentiable image descriptor: (N, 3, H, W) in [0, 1] → (N, D)."""

    name: str
    metric: Metric

    def dim(self, image_size: int) -> int: ...

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class PixelFeature:
    """Flattened RGB in [−1, 1], compared by ℓ2 (the AMG paper's pixel level, Eq. 8)."""

    name = "pixel"
    metric: Metric = "l2"

    def dim(self, image_size: int) -> int:
        return 3 * image_size * image_size

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images * 2 - 1).flatten(1)


_REGISTRY: dict[str, Callable[[], Feature]] = {"pixel": PixelFeature}


def register_feature(name: str, factory: Callable[[], Feature]) -> None:
    """Make a feature available to indexes and the CLI under `name`."""
    _REGISTRY[name] = factory


def available_features() -> list[str]:
    return sorted(_REGISTRY)


def get_feature(name: str) -> Feature:
    """The feature called `name`, or an error that lists the registered ones."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown feature {name!r}; choose one of: {', '.join(available_features())}")
    return _REGISTRY[name]()


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float32 (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float().div(255)


def embed_images(feature: Feature, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Feature vectors (float32, C-contiguous) of uint8 images, computed in batches without gradients."""
    with torch.no_grad():
        chunks = [feature(images_to_tensor(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return np.ascontiguousarray(torch.cat(chunks).numpy(), dtype=np.float32)
