"""Batched copy-edit augmentations for the copydet descriptor (SSCD-style: zoom, shift, flip, colour, blur, noise)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from memdemo.reference.copydet import gaussian_blur

BLUR_SIGMAS = (0.6, 1.0, 1.5, 2.5)


def _uniform(low: float, high: float, size: int, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator)


def geometric(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random zoom (0.9–1.1), shift (±6%), rotation (±5°) and horizontal flip, filling with white. Mild on purpose:
    a regurgitated emoji keeps its layout, and strong crops made distinct emoji (all those yellow faces) look alike
    to the descriptor (a first run: nearest distinct emoji at cosine 0.97 for 5% of holdout emoji)."""
    n = len(images)
    scale = _uniform(0.9, 1.1, n, generator)
    angle = _uniform(-math.pi / 36, math.pi / 36, n, generator)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    shift = _uniform(-0.06, 0.06, 2 * n, generator).view(n, 2)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], -1), torch.stack([sin * flip, cos, shift[:, 1]], -1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images - 1, grid, align_corners=False, padding_mode="zeros") + 1


def photometric(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Hue swap (a random channel permutation), brightness, contrast and saturation jitter, sometimes grey."""
    n = len(images)
    permutations = torch.stack([torch.randperm(3, generator=generator) for _ in range(n)])
    swap = torch.rand(n, generator=generator) < 0.5
    order = torch.where(swap[:, None], permutations, torch.arange(3))
    images = torch.gather(images, 1, order[:, :, None, None].expand_as(images))
    grey = images.mean(1, keepdim=True)
    saturation = torch.where(torch.rand(n, generator=generator) < 0.2, 0.0, _uniform(0.3, 1.5, n, generator))
    images = grey + saturation[:, None, None, None] * (images - grey)
    mean = images.mean((1, 2, 3), keepdim=True)
    contrast = _uniform(0.6, 1.4, n, generator)[:, None, None, None]
    brightness = _uniform(-0.25, 0.25, n, generator)[:, None, None, None]
    return ((images - mean) * contrast + mean + brightness).clamp(0, 1)


def blur_and_noise(images: torch.Tensor, generator: torch.Generator, blur_p: float, max_noise: float) -> torch.Tensor:
    """Gaussian blur of a random strength with probability blur_p, then Gaussian noise of std up to max_noise."""
    n = len(images)
    choice = torch.randint(len(BLUR_SIGMAS), (n,), generator=generator)
    blurred = torch.stack([gaussian_blur(images, sigma) for sigma in BLUR_SIGMAS])[choice, torch.arange(n)]
    images = torch.where((torch.rand(n, generator=generator) < blur_p)[:, None, None, None], blurred, images)
    std = _uniform(0, max_noise, n, generator)[:, None, None, None]
    return images + std * torch.randn(images.shape, generator=generator)


def copy_edit(images: torch.Tensor, generator: torch.Generator, degrade: bool = False) -> torch.Tensor:
    """One random copy edit of each image in [0, 1]. degrade=True makes it look like an early, noisy x̂0
    (heavier blur, noise up to 0.5, values may leave [0, 1] as unclipped x̂0 do)."""
    images = photometric(geometric(images, generator), generator)
    if degrade:
        return blur_and_noise(images, generator, blur_p=0.8, max_noise=0.5)
    return blur_and_noise(images, generator, blur_p=0.3, max_noise=0.05).clamp(0, 1)
