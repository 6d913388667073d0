import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import SHIPPED_PIXEL_INDEX

from memdemo.guidance.amg import (
    COPYDET_C3,
    AMGConfig,
    AMGPolicy,
    amg_config,
    deduplication_guidance,
    deduplication_scale,
    despecification_guidance,
    despecification_scale,
    dissimilarity_guidance,
    official_c3,
    split_constant,
)
from memdemo.guidance.base import StepContext
from memdemo.guidance.cfg import classifier_free_guidance, cond_uncond_norm, predicted_x0
from memdemo.guidance.similarity import SimilarityMonitor
from memdemo.guidance.thresholds import (
    EMOJIMEM_PIXEL_THRESHOLD,
    calibrate_pixel_threshold,
    official_threshold,
    threshold_at,
)
from memdemo.guidance.transition import TransitionPolicy, is_transition
from memdemo.reference import ReferenceIndex
from memdemo.reference.index import IndexEntry, Match


def test_cfg_x0_and_norm_by_hand():
    eps_u, eps_c = torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 0.0]])
    assert classifier_free_guidance(eps_u, eps_c, 3.0).tolist() == [[4.0, -4.0]]
    assert cond_uncond_norm(eps_u, eps_c).item() == pytest.approx(5**0.5)
    # ᾱ = 0.64: x̂0 = (x − 0.6·ε)/0.8
    assert predicted_x0(torch.tensor([1.0]), torch.tensor([0.5]), 0.64).item() == pytest.approx((1 - 0.3) / 0.8)


def test_despecification_scale_is_clamped_to_0_and_s0_minus_1():
    assert despecification_scale(0.2, 13, 7.5) == pytest.approx(2.6)
    assert despecification_scale(0.6, 13, 7.5) == pytest.approx(6.5)
    assert despecification_scale(-0.1, 13, 7.5) == 0.0


def test_deduplication_scale_is_clamped_to_0_and_s0_minus_s1_minus_1():
    assert deduplication_scale(0.1, 20, 7.5, 1.0) == pytest.approx(2.0)
    assert deduplication_scale(0.2, 21.7, 7.5, 2.6) == pytest.approx(3.9)
    assert deduplication_scale(0.5, 20, 7.5, 6.5) == 0.0
    assert deduplication_scale(-0.5, 20, 7.5, 0.0) == 0.0


def test_guidance_terms_by_hand():
    eps_u, eps_c, eps_n = torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([2.0])
    assert despecification_guidance(eps_u, eps_c, 2.0).item() == -4.0
    assert deduplication_guidance(eps_u, eps_n, 3.0).item() == -3.0
    # c3·√(1 − ᾱ)·∇σ with ᾱ = 0.75 → 10·0.5·2
    assert dissimilarity_guidance(torch.tensor([2.0]), 0.75, 10.0).item() == pytest.approx(10.0)


def test_official_threshold_at_ddim_timesteps():
    assert official_threshold(981) == pytest.approx(0.3 + 0.1 * math.exp(-4.905))
    assert official_threshold(981) == pytest.approx(0.30074, abs=1e-5)
    assert official_threshold(501) == pytest.approx(0.30817, abs=1e-5)
    assert official_threshold(1) == pytest.approx(0.39950, abs=1e-5)
    assert threshold_at("constant", 700, 0.42) == 0.42
    # calibrated: τ − 0.1 + 0.1·exp(−0.005·t) → τ at t = 0, τ − 0.1 + 0.1·e^−5 at t = 1000
    assert threshold_at("calibrated", 0, 0.9) == pytest.approx(0.9)
    assert threshold_at("calibrated", 1000, 0.9) == pytest.approx(0.8 + 0.1 * math.exp(-5))
    assert threshold_at("calibrated", 200, 0.9) == pytest.approx(0.8 + 0.1 * math.exp(-1))
    with pytest.raises(ValueError, match="choose one of"):
        threshold_at("parabolic", 1)


def test_a_calibrated_descriptor_gets_its_own_presets_and_threshold():
    main = amg_config("main", "cosine", calibrated=0.87)
    assert (main.schedule, main.constant_threshold, main.c3) == ("calibrated", 0.87, COPYDET_C3)
    strong = amg_config("strong", "cosine", calibrated=0.87, c1=5.0)
    assert (strong.c1, strong.c3, strong.constant_threshold) == (5.0, 5 * COPYDET_C3, 0.87)
    assert amg_config("main", "cosine").schedule == "official"


def test_emojimem_pixel_threshold_is_the_recorded_calibration(emojimem):
    index = ReferenceIndex.load(SHIPPED_PIXEL_INDEX)
    assert calibrate_pixel_threshold(emojimem, index) == pytest.approx(EMOJIMEM_PIXEL_THRESHOLD, abs=0.005)


class _PixelBackend:
    name, image_size = "toy", 4

    def decode(self, x0):
        return ((x0 + 1) / 2).clamp(0, 1)


def test_g_sim_lowers_the_similarity_on_a_toy_problem():
    rng = np.random.default_rng(0)
    images = rng.integers(60, 200, size=(60, 4, 4, 3), dtype=np.uint8)
    index = ReferenceIndex.from_images(images, [IndexEntry(i, str(i)) for i in range(60)], "pixel")
    monitor = SimilarityMonitor(_PixelBackend(), index)
    alpha_bar = 0.5
    x0_target = torch.from_numpy(images[7]).permute(2, 0, 1)[None].float() / 127.5 - 1
    eps = torch.from_numpy(rng.normal(size=(1, 3, 4, 4))).float()
    x_t = alpha_bar**0.5 * (x0_target + 0.05) + (1 - alpha_bar) ** 0.5 * eps
    match = monitor.match(predicted_x0(x_t, eps, alpha_bar))[0]
    assert match.row == 7
    gradient = monitor.gradient(x_t, eps, alpha_bar, match)
    guided = eps + dissimilarity_guidance(gradient, alpha_bar, c3=0.5)
    before = monitor.similarity(predicted_x0(x_t, eps, alpha_bar), match).item()
    after = monitor.similarity(predicted_x0(x_t, guided, alpha_bar), match).item()
    assert after < before


def test_dtp_rule_on_synthetic_curves():
    assert not is_transition([1.0, 2.0])
    assert is_transition([5.0, 4.0, 6.0])
    assert not is_transition([5.0, 4.0, 4.0])  # strict
    assert not any(is_transition(list(range(j))) for j in range(1, 10))  # monotone: no minimum


def _run(policy, curve, timesteps):
    eps_u, eps_c = torch.zeros(1, 1), torch.ones(1, 1)
    out = []
    for index, (d, t) in enumerate(zip(curve, timesteps, strict=True)):
        step = StepContext(
            index, t, 0.5, torch.zeros(1, 1), eps_u, eps_c, 7.5, d, lambda c: eps_c, lambda x: (eps_u, eps_c)
        )
        out.append(policy.guide(step))
    return out


def test_dtp_switches_once_at_the_first_minimum_only():
    timesteps = [900, 800, 700, 600, 500, 400, 300]
    curve = [5.0, 4.0, 3.0, 4.0, 2.0, 3.0, 4.0]
    guided = _run(TransitionPolicy("dtp", dynamic=True, pre_scale=0.0, switch_t=100), curve, timesteps)
    assert [g.scales["cfg"] for g in guided] == [0, 0, 0, 7.5, 7.5, 7.5, 7.5]
    assert [g.transition for g in guided] == [False, False, False, True, False, False, False]
    assert guided[3].transition and not guided[3].fallback and guided[3].terms == []


def test_dtp_without_a_minimum_falls_back_to_the_static_switch_and_says_so():
    policy = TransitionPolicy("og-dtp", dynamic=True, pre_scale=-7.5, switch_t=500)
    guided = _run(policy, [1.0, 2.0, 3.0, 4.0, 5.0], [900, 700, 500, 300, 100])
    assert [g.scales["cfg"] for g in guided] == [-7.5, -7.5, 7.5, 7.5, 7.5]
    assert guided[2].transition and guided[2].fallback and policy.fell_back
    assert not any(g.fallback for g in guided[3:])
    # opposite guidance (Eq. 5): ε̂ = ε_u − s·(ε_c − ε_u)
    assert guided[0].eps.item() == -7.5


def test_stp_switches_at_the_given_t():
    guided = _run(TransitionPolicy("stp", dynamic=False, pre_scale=0.0, switch_t=650), [9.0] * 4, [900, 700, 650, 400])
    assert [g.scales["cfg"] for g in guided] == [0, 0, 7.5, 7.5]


def test_official_c3_factor_by_hand():
    assert official_c3(100.0, 0.5, 1000) == pytest.approx(20.0)
    assert official_c3(100.0, 0.5, 830) == pytest.approx(20.0 * math.e)


def test_official_c3_never_turns_negative_below_its_floor():
    # Review defect 2: c3·(σ − 0.3) was −10 at σ = 0.2, so G_sim pulled toward the training image.
    assert official_c3(100.0, 0.2, 1000) == 0.0
    assert official_c3(100.0, 0.9, 1000, floor=0.85) == pytest.approx(5.0)


def test_split_constants_leave_room_for_g_dup_by_hand():
    # s0 = 7.5, λ = 0.9: c1 = c2 = 6.5/1.8; at σ = λ, s1 = 3.25 and s2 = min(3.25, 7.5 − 3.25 − 1) = 3.25.
    c = split_constant(7.5, 0.9)
    assert c == pytest.approx(6.5 / 1.8)
    s1 = despecification_scale(0.9, c, 7.5)
    assert s1 == pytest.approx(3.25) and deduplication_scale(0.9, c, 7.5, s1) == pytest.approx(3.25)
    # above λ, G_spe grows and G_dup takes the rest of s0 − 1
    s1 = despecification_scale(0.95, c, 7.5)
    assert deduplication_scale(0.95, c, 7.5, s1) == pytest.approx(6.5 - s1) and 6.5 - s1 > 0


def test_all_three_terms_fire_with_a_calibrated_descriptor():
    # Review defect 4: with c1 = 13, s1 hit s0 − 1 as soon as the gate opened and Eq. 15 gave s2 = 0.
    config = amg_config("main", "cosine", calibrated=0.9)
    policy = AMGPolicy(_ScriptedMonitor([0.95] * 3), config)
    terms = [policy.guide(step).terms for step in _contexts(3, predict=lambda caption: torch.ones(1, 1))]
    assert all(set(t) == {"spe", "dup", "sim"} for t in terms)
    assert 0 < policy.config.c1 * 0.95 < 6.5


def test_official_sd_with_a_calibrated_descriptor_thresholds_on_its_scale():
    # Review defect 1: official λ_t (0.3–0.4) against a descriptor whose σ is ≥ 0.85 for every image kept the gate
    # open at every step. Shifted, λ_t runs from τ − 0.1 to τ, like the calibrated schedule.
    config = amg_config("official-sd", "cosine", calibrated=0.915)
    assert config.gate(0) == pytest.approx(0.915)
    assert all(0.81 < config.gate(t) <= 0.915 for t in range(0, 1000, 50))
    # G_dup and G_sim follow the gate (official G_spe acts whenever σ is above the shifted zero, as in that code).
    policy = AMGPolicy(_ScriptedMonitor([0.8] * 4), replace(config, terms=("dup", "sim")))
    assert [policy.guide(step).active for step in _contexts(2, predict=lambda caption: torch.ones(1, 1))] == [
        False,
        False,
    ]
    assert amg_config("official-sd", "cosine").gate(0) == pytest.approx(0.4)  # SSCD scale unchanged


class _ScriptedMonitor:
    """Returns scripted similarities and always finds the duplicated caption 'dup'."""

    def __init__(self, sigmas):
        self.sigmas = iter(sigmas)
        self.duplicate_lookups = 0

    def match(self, x0):
        return [Match(0, 0, "nearest", 1, next(self.sigmas), 1.0, None, None)]

    def duplicate_caption(self, x0):
        self.duplicate_lookups += 1
        return "dup"

    def gradient(self, x_t, eps, alpha_bar, match, eps_of_x=None):
        return torch.ones_like(x_t)


def test_official_variant_holds_g_dup_for_ten_steps_after_it_fires():
    sigmas = [0.9] + [0.1] * 14
    monitor = _ScriptedMonitor(sigmas)
    config = AMGConfig(terms=("dup",), schedule="constant", constant_threshold=0.5, official=True)
    policy = AMGPolicy(monitor, config)
    applied = [
        "dup" in policy.guide(step).terms for step in _contexts(len(sigmas), predict=lambda caption: torch.ones(1, 1))
    ]
    assert applied == [True] * 10 + [False] * 5
    assert monitor.duplicate_lookups == 1


def test_paper_variant_gates_g_spe_by_the_threshold_and_official_by_positive_similarity():
    for official, expected in ((False, [False, True]), (True, [True, True])):
        config = AMGConfig(terms=("spe",), schedule="constant", constant_threshold=0.5, official=official)
        policy = AMGPolicy(_ScriptedMonitor([0.2, 0.7]), config)
        assert ["spe" in policy.guide(step).terms for step in _contexts(2)] == expected


def _contexts(count, predict=None):
    eps_u, eps_c = torch.zeros(1, 1), torch.ones(1, 1)
    for index in range(count):
        yield StepContext(
            index, 900 - 50 * index, 0.5, torch.zeros(1, 1), eps_u, eps_c, 7.5, 1.0, predict, lambda x: (eps_u, eps_c)
        )
