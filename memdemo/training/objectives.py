"""Training losses in VP form (σ_t² = 1 − ᾱ_t): the DDPM ε-MSE and the Ambient loss of "Does Generation Require
Memorization? Creative Diffusion Models using Ambient Diffusion" (Alg. 1, Eq. 6), as DESIGN.md Decisions §2 fixes it."""

from __future__ import annotations

import torch


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def nature_sigma2(t_nature: int, alphas_cumprod: torch.Tensor) -> float:
    """σ²_{t_n} = 1 − ᾱ_{t_n}; t_n = 0 means clean data (σ = 0), which makes the Ambient loss the DDPM loss."""
    return 0.0 if t_nature == 0 else float(1 - alphas_cumprod[t_nature])


def ambient_coefficients(sigma2_t: torch.Tensor, sigma2_n: float) -> tuple[torch.Tensor, torch.Tensor]:
    """c0, c1 with c0·x0 + c1·x_t = E[x_{t_n} | x_t, x0]: the x̂0 → x̂_{t_n} map of the high-noise branch."""
    c0 = (sigma2_t - sigma2_n) / (sigma2_t * (1 - sigma2_n) ** 0.5)
    c1 = (sigma2_n / sigma2_t) * ((1 - sigma2_t) / (1 - sigma2_n)) ** 0.5
    return c0, c1


def noised_inputs(
    x0: torch.Tensor,
    x_nature: torch.Tensor | None,
    t: torch.Tensor,
    noise: torch.Tensor,
    t_nature: int | None,
    alphas_cumprod: torch.Tensor,
) -> torch.Tensor:
    """x_t: from clean x0 for t ≤ t_n (or DDPM), from the stored noisy copy x_{t_n} for t > t_n (Alg. 1)."""
    alpha_bar = _expand(alphas_cumprod[t], x0)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    if t_nature is None or x_nature is None:
        return x_t
    ratio = alpha_bar / (1 - nature_sigma2(t_nature, alphas_cumprod))
    from_nature = ratio.sqrt() * x_nature + (1 - ratio).clamp(min=0).sqrt() * noise
    return torch.where(_expand(t > t_nature, x0), from_nature, x_t)


def diffusion_loss(
    eps_pred: torch.Tensor,
    x_t: torch.Tensor,
    noise: torch.Tensor,
    x_nature: torch.Tensor | None,
    t: torch.Tensor,
    t_nature: int | None,
    alphas_cumprod: torch.Tensor,
) -> torch.Tensor:
    """Per-sample loss. t ≤ t_n (or DDPM): ‖ε − ε_θ‖² = SNR_t·‖h − x0‖². t > t_n (Eq. 6):
    SNR_t·‖c0·h + c1·x_t − x_{t_n}‖² with h = (x_t − σ_t ε_θ)/√ᾱ_t. Both branches carry SNR_t, so the low branch is
    exactly the DDPM twin's loss."""
    low = (eps_pred - noise).pow(2).flatten(1).mean(1)
    if t_nature is None or x_nature is None:
        return low
    alpha_bar = alphas_cumprod[t]
    sigma2_t = 1 - alpha_bar
    a, s2 = _expand(alpha_bar, x_t), _expand(sigma2_t, x_t)
    h = (x_t - s2.sqrt() * eps_pred) / a.sqrt()
    c0, c1 = ambient_coefficients(s2, nature_sigma2(t_nature, alphas_cumprod))
    high = (alpha_bar / sigma2_t) * (c0 * h + c1 * x_t - x_nature).pow(2).flatten(1).mean(1)
    return torch.where(t > t_nature, high, low)
