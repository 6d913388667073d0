import pytest
import torch
from diffusers import DDPMScheduler

from memdemo.backends.emojimem import SCHEDULE_CONFIG
from memdemo.training.objectives import ambient_coefficients, diffusion_loss, nature_sigma2, noised_inputs

ALPHAS = DDPMScheduler.from_config(SCHEDULE_CONFIG).alphas_cumprod.double()


def test_ambient_target_is_the_posterior_mean_of_x_tn_given_x_t_and_x0():
    # Independent derivation: (x_tn, x_t) | x0 is jointly Gaussian with
    # E = (√ᾱ_n·x0, √ᾱ_t·x0), Var(x_t) = 1 − ᾱ_t, Cov(x_tn, x_t) = √(ᾱ_t/ᾱ_n)·(1 − ᾱ_n).
    x0, x_t = torch.tensor(0.7, dtype=torch.float64), torch.tensor(-0.4, dtype=torch.float64)
    for t_n, t in ((100, 400), (300, 301), (50, 999)):
        a_n, a_t = ALPHAS[t_n], ALPHAS[t]
        posterior = a_n.sqrt() * x0 + (a_t / a_n).sqrt() * (1 - a_n) / (1 - a_t) * (x_t - a_t.sqrt() * x0)
        c0, c1 = ambient_coefficients(1 - a_t, float(1 - a_n))
        assert (c0 * x0 + c1 * x_t).item() == pytest.approx(posterior.item(), rel=1e-12)


def _batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(6, 3, 4, 4, generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(6, 3, 4, 4, generator=generator, dtype=torch.float64)
    eps_pred = torch.randn(6, 3, 4, 4, generator=generator, dtype=torch.float64)
    x_nature = x0 + 0.3 * torch.randn(6, 3, 4, 4, generator=generator, dtype=torch.float64)
    t = torch.tensor([0, 1, 10, 200, 600, 999])
    return x0, noise, eps_pred, x_nature, t


def test_without_ambient_and_with_t_n_zero_the_loss_is_the_ddpm_loss():
    x0, noise, eps_pred, _, t = _batch()
    ddpm = (eps_pred - noise).pow(2).flatten(1).mean(1)
    x_t = noised_inputs(x0, None, t, noise, None, ALPHAS)
    assert torch.equal(diffusion_loss(eps_pred, x_t, noise, None, t, None, ALPHAS), ddpm)
    # t_n = 0: the "noisy" copy is the clean image; the high branch reduces to SNR·‖h − x0‖² = ‖ε − ε_θ‖².
    x_t0 = noised_inputs(x0, x0, t, noise, 0, ALPHAS)
    torch.testing.assert_close(x_t0, x_t)
    torch.testing.assert_close(diffusion_loss(eps_pred, x_t0, noise, x0, t, 0, ALPHAS), ddpm)


def test_branches_split_at_t_n():
    x0, noise, eps_pred, x_nature, t = _batch()
    t_n = 150
    x_t = noised_inputs(x0, x_nature, t, noise, t_n, ALPHAS)
    loss = diffusion_loss(eps_pred, x_t, noise, x_nature, t, t_n, ALPHAS)
    ddpm = (eps_pred - noise).pow(2).flatten(1).mean(1)
    low = t <= t_n
    assert torch.equal(loss[low], ddpm[low]) and not torch.allclose(loss[~low], ddpm[~low])
    a_n = 1 - nature_sigma2(t_n, ALPHAS)
    ratio = ALPHAS[600] / a_n
    torch.testing.assert_close(x_t[4], ratio.sqrt() * x_nature[4] + (1 - ratio).sqrt() * noise[4])


def test_a_perfect_high_noise_prediction_has_zero_ambient_loss():
    x0, noise, _, x_nature, _ = _batch()
    t_n, t = 150, torch.full((6,), 700)
    x_t = noised_inputs(x0, x_nature, t, noise, t_n, ALPHAS)
    # An ε-prediction whose h solves c0·h + c1·x_t = x_tn exactly.
    a_t, s2_t = ALPHAS[700], 1 - ALPHAS[700]
    c0, c1 = ambient_coefficients(s2_t, nature_sigma2(t_n, ALPHAS))
    h = (x_nature - c1 * x_t) / c0
    eps_pred = (x_t - a_t.sqrt() * h) / s2_t.sqrt()
    assert diffusion_loss(eps_pred, x_t, noise, x_nature, t, t_n, ALPHAS).abs().max() < 1e-20
