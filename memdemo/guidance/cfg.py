"""Classifier-free guidance and the quantities every policy shares."""

from __future__ import annotations

import torch


def classifier_free_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """ε̂ = ε_u + s·(ε_c − ε_u) (Ho & Salimans; AMG paper Eq. 7, Jain et al. Eq. 4)."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def cond_uncond_norm(eps_uncond: torch.Tensor, eps_cond: torch.Tensor) -> torch.Tensor:
    """d_t = ‖ε_c − ε_u‖ per sample: Wen et al.'s detection signal, Jain et al.'s transition signal (unsquared)."""
    return (eps_cond - eps_uncond).flatten(1).norm(dim=1)


def predicted_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """x̂0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t (AMG paper Eq. 12); never clipped (docs/decisions.md §9)."""
    return (x_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5
