"""Training losses in VP form (σ_t² = 1 − ᾱ_t): the DDPM loss in ε or v parameterisation, optionally min-SNR-γ
weighted, and the Ambient loss of "Does Generation Require Memorization? Creative Diffusion Models using Ambient
Diffusion" (Alg. 1, Eq. 6) in VP form (docs/training.md)."""

from __future__ import annotations

import torch

from memdemo.backends.base import PREDICTION_TYPES


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


PREDICTIONS = PREDICTION_TYPES


def prediction_target(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor, prediction: str) -> torch.Tensor:
    """What the network learns to output: ε, or v = √ᾱ_t·ε − √(1 − ᾱ_t)·x0 (Salimans & Ho 2022, §4)."""
    if prediction == "epsilon":
        return noise
    a = _expand(alpha_bar, x0)
    return a.sqrt() * noise - (1 - a).sqrt() * x0


def predicted_clean(output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor, prediction: str) -> torch.Tensor:
    """x̂0 from the network output: (x_t − √(1 − ᾱ_t)·ε̂)/√ᾱ_t, or √ᾱ_t·x_t − √(1 − ᾱ_t)·v̂."""
    a = _expand(alpha_bar, x_t)
    if prediction == "epsilon":
        return (x_t - (1 - a).sqrt() * output) / a.sqrt()
    return a.sqrt() * x_t - (1 - a).sqrt() * output


def clean_space_weight(alpha_bar: torch.Tensor, prediction: str, min_snr_gamma: float | None) -> torch.Tensor:
    """The weight w_t of ‖x̂0 − x0‖² that each loss amounts to: ε-MSE = SNR_t, v-MSE = SNR_t + 1, and min-SNR-γ
    (Hang et al. 2023, Eq. 8) = min(SNR_t, γ) for either parameterisation."""
    snr = alpha_bar / (1 - alpha_bar)
    if min_snr_gamma is not None:
        return snr.clamp(max=min_snr_gamma)
    return snr if prediction == "epsilon" else snr + 1


def diffusion_loss(
    output: torch.Tensor,
    x_t: torch.Tensor,
    target: torch.Tensor,
    x_nature: torch.Tensor | None,
    t: torch.Tensor,
    t_nature: int | None,
    alphas_cumprod: torch.Tensor,
    prediction: str = "epsilon",
    min_snr_gamma: float | None = None,
) -> torch.Tensor:
    """Per-sample loss. t ≤ t_n (or DDPM): ‖output − target‖² (ε or v), reweighted to min(SNR_t, γ) in x0 space
    when γ is set. t > t_n (Ambient Eq. 6): w_t·‖c0·x̂0 + c1·x_t − x_{t_n}‖² with the same clean-space weight w_t,
    so the low branch is exactly the DDPM twin's loss."""
    alpha_bar = alphas_cumprod[t]
    low = (output - target).pow(2).flatten(1).mean(1)
    if min_snr_gamma is not None:
        native = clean_space_weight(alpha_bar, prediction, None)
        low = low * clean_space_weight(alpha_bar, prediction, min_snr_gamma) / native
    if t_nature is None or x_nature is None:
        return low
    s2 = _expand(1 - alpha_bar, x_t)
    h = predicted_clean(output, x_t, alpha_bar, prediction)
    c0, c1 = ambient_coefficients(s2, nature_sigma2(t_nature, alphas_cumprod))
    weight = clean_space_weight(alpha_bar, prediction, min_snr_gamma)
    high = weight * (c0 * h + c1 * x_t - x_nature).pow(2).flatten(1).mean(1)
    return torch.where(t > t_nature, high, low)
