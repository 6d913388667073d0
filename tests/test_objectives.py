import pytest
import torch
from diffusers import DDPMScheduler

from memdemo.backends.base import v_to_epsilon
from memdemo.backends.emojimem import SCHEDULE_CONFIG
from memdemo.training.objectives import (
    ambient_coefficients,
    clean_space_weight,
    diffusion_loss,
    nature_sigma2,
    noised_inputs,
    predicted_clean,
    prediction_target,
)

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


def test_v_parameterisation_by_hand():
    # ᾱ = 0.64: √ᾱ = 0.8, √(1 − ᾱ) = 0.6; x0 = 0.5, ε = −1 → x_t = −0.2, v = 0.8·(−1) − 0.6·0.5 = −1.1.
    alpha_bar = torch.tensor([0.64], dtype=torch.float64)
    x0, noise = torch.tensor([[0.5]], dtype=torch.float64), torch.tensor([[-1.0]], dtype=torch.float64)
    v = prediction_target(x0, noise, alpha_bar, "v_prediction")
    assert v.item() == pytest.approx(-1.1)
    assert prediction_target(x0, noise, alpha_bar, "epsilon").item() == -1.0
    x_t = torch.tensor([[-0.2]], dtype=torch.float64)
    assert predicted_clean(v, x_t, alpha_bar, "v_prediction").item() == pytest.approx(0.5)
    assert predicted_clean(noise, x_t, alpha_bar, "epsilon").item() == pytest.approx(0.5)
    assert v_to_epsilon(v, x_t, alpha_bar).item() == pytest.approx(-1.0)


def test_clean_space_weights_by_hand():
    alpha_bar = torch.tensor([0.8, 0.2])  # SNR 4 and 0.25
    torch.testing.assert_close(clean_space_weight(alpha_bar, "epsilon", None), torch.tensor([4.0, 0.25]))
    torch.testing.assert_close(clean_space_weight(alpha_bar, "v_prediction", None), torch.tensor([5.0, 1.25]))
    torch.testing.assert_close(clean_space_weight(alpha_bar, "v_prediction", 1.0), torch.tensor([1.0, 0.25]))


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_each_loss_is_its_clean_space_weight_times_the_x0_error(prediction):
    x0, noise, output, _, t = _batch()
    alpha_bar = ALPHAS[t]
    x_t = noised_inputs(x0, None, t, noise, None, ALPHAS)
    target = prediction_target(x0, noise, alpha_bar, prediction)
    x0_error = (predicted_clean(output, x_t, alpha_bar, prediction) - x0).pow(2).flatten(1).mean(1)
    for gamma in (None, 5.0):
        loss = diffusion_loss(output, x_t, target, None, t, None, ALPHAS, prediction, gamma)
        keep = t < 999  # ᾱ_999 ≈ 0: x̂0 from ε is ill-conditioned there, the identity still holds in exact arithmetic
        expected = clean_space_weight(alpha_bar, prediction, gamma) * x0_error
        torch.testing.assert_close(loss[keep], expected[keep], rtol=1e-6, atol=1e-9)
    # min-SNR-5 shrinks the high-SNR steps (SNR_0 ≫ 5). At SNR ≈ 0 it keeps ε's weight (min(SNR, γ)/SNR = 1) but
    # scales v's by SNR/(SNR + 1) ≈ 0, as in Hang et al.'s v-prediction form.
    plain = diffusion_loss(output, x_t, target, None, t, None, ALPHAS, prediction)
    clipped = diffusion_loss(output, x_t, target, None, t, None, ALPHAS, prediction, 5.0)
    assert clipped[0] < plain[0] / 100
    if prediction == "epsilon":
        assert clipped[-1] == pytest.approx(plain[-1].item(), rel=1e-6)
    else:
        assert clipped[-1] < plain[-1] * 1e-3


def test_a_perfect_high_noise_v_prediction_has_zero_ambient_loss():
    x0, noise, _, x_nature, _ = _batch()
    t_n, t = 150, torch.full((6,), 700)
    x_t = noised_inputs(x0, x_nature, t, noise, t_n, ALPHAS)
    a_t = ALPHAS[700]
    c0, c1 = ambient_coefficients(1 - a_t, nature_sigma2(t_n, ALPHAS))
    h = (x_nature - c1 * x_t) / c0
    v_pred = (a_t.sqrt() * x_t - h) / (1 - a_t).sqrt()
    target = prediction_target(x0, noise, ALPHAS[t], "v_prediction")
    loss = diffusion_loss(v_pred, x_t, target, x_nature, t, t_n, ALPHAS, "v_prediction", 5.0)
    assert loss.abs().max() < 1e-20
