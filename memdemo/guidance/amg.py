"""Anti-Memorization Guidance (Chen, Liu, Xu, CVPR 2024): despecification, caption deduplication and
dissimilarity guidance, each gated by 1{σ_t > λ_t} (Eq. 10–17)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch

from memdemo.guidance.base import TERM_NAMES, GuidanceError, Guided, StepContext, check_finite
from memdemo.guidance.cfg import classifier_free_guidance, predicted_x0
from memdemo.guidance.similarity import SimilarityMonitor
from memdemo.guidance.thresholds import THRESHOLD_SCHEDULES, threshold_at

AMG_TERMS = ("spe", "dup", "sim")


def despecification_scale(sigma: float, c1: float, s0: float) -> float:
    """s1 = max(min(c1·σ_t, s0 − 1), 0) (Eq. 13)."""
    return max(min(c1 * sigma, s0 - 1), 0.0)


def deduplication_scale(sigma: float, c2: float, s0: float, s1: float) -> float:
    """s2 = max(min(c2·σ_t, s0 − s1 − 1), 0) (Eq. 15)."""
    return max(min(c2 * sigma, s0 - s1 - 1), 0.0)


def despecification_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, s1: float) -> torch.Tensor:
    """G_spe = −s1·(ε(x_t, y) − ε(x_t)) (Eq. 14)."""
    return -s1 * (eps_cond - eps_uncond)


def deduplication_guidance(eps_uncond: torch.Tensor, eps_duplicate: torch.Tensor, s2: float) -> torch.Tensor:
    """G_dup = −s2·(ε(x_t, y_N) − ε(x_t)) (Eq. 16)."""
    return -s2 * (eps_duplicate - eps_uncond)


def dissimilarity_guidance(similarity_gradient: torch.Tensor, alpha_bar: float, c3: float) -> torch.Tensor:
    """G_sim = c3·√(1 − ᾱ_t)·∇_{x_t}σ_t (Eq. 17); added to ε̂ it lowers σ (x̂0 moves against ∇σ)."""
    return c3 * (1 - alpha_bar) ** 0.5 * similarity_gradient


@dataclass(frozen=True)
class AMGConfig:
    """Which terms act, their constants, and the threshold schedule."""

    terms: tuple[str, ...] = AMG_TERMS
    c1: float = 13.0
    c2: float = 21.7
    c3: float = 100.0
    schedule: str = "official"
    constant_threshold: float = 0.3


# The paper gives no constants. c1 = 13 is the official code's (s1 reaches s0 − 1 = 6.5 at σ = 0.5); c2 = 6.5/0.3
# lets s2 reach its cap at σ = 0.3, as the official c2 = (s0 − 1 − s1)/0.3 does. c3 is per similarity: ‖∇σ‖ of the
# pixel nL2 is small, so pixel G_sim needs ≈1e3 to act (research/probe-training.md); cosine uses the official 100.
# `strong` doubles c1, c2 and multiplies c3 by 5, the paper's "increasing AMG's guidance scale".
PRESETS = {
    ("main", "l2"): AMGConfig(c3=1e3, schedule="emojimem-pixel"),
    ("main", "cosine"): AMGConfig(c3=100.0, schedule="official"),
    ("strong", "l2"): AMGConfig(c1=26.0, c2=43.4, c3=5e3, schedule="emojimem-pixel"),
    ("strong", "cosine"): AMGConfig(c1=26.0, c2=43.4, c3=500.0, schedule="official"),
}


def amg_config(preset: str, metric: str, **overrides) -> AMGConfig:
    """A preset for the index's similarity kind, with any non-None overrides (c1, c2, c3, terms, schedule ...)."""
    if (preset, metric) not in PRESETS:
        raise GuidanceError(f"unknown AMG preset {preset!r}; choose one of: main, strong")
    config = replace(PRESETS[preset, metric], **{k: v for k, v in overrides.items() if v is not None})
    unknown = set(config.terms) - set(AMG_TERMS)
    if unknown or not config.terms:
        raise GuidanceError(f"AMG terms must be a non-empty subset of {', '.join(AMG_TERMS)}, got {config.terms}")
    if config.schedule not in THRESHOLD_SCHEDULES:
        raise GuidanceError(f"unknown threshold schedule {config.schedule!r}; choose one of {THRESHOLD_SCHEDULES}")
    return config


@dataclass
class AMGPolicy:
    """Paper form: σ_t of the CFG x̂0 gates all active terms; G_sim differentiates σ with ε̂ held fixed."""

    monitor: SimilarityMonitor
    config: AMGConfig = field(default_factory=AMGConfig)
    name: str = "amg"

    def params(self) -> dict:
        return asdict(self.config)

    def guide(self, step: StepContext) -> Guided:
        eps = classifier_free_guidance(step.eps_uncond, step.eps_cond, step.cfg_scale)
        x0 = predicted_x0(step.x_t, eps, step.alpha_bar)
        match = self.monitor.match(x0)[0]
        sigma = match.similarity
        threshold = threshold_at(self.config.schedule, step.t, self.config.constant_threshold)
        scales = {"sigma": sigma, "threshold": threshold}
        if sigma <= threshold:
            return Guided(eps, threshold=threshold, scales=scales)
        terms, s0, s1 = [], step.cfg_scale, 0.0
        if "spe" in self.config.terms:
            s1 = despecification_scale(sigma, self.config.c1, s0)
            g_spe = despecification_guidance(step.eps_uncond, step.eps_cond, s1)
            eps = check_finite(eps + g_spe, step, TERM_NAMES["spe"])
            scales["s1"] = s1
            terms.append("spe")
        if "dup" in self.config.terms:
            caption = self.monitor.duplicate_caption(x0) or match.caption
            s2 = deduplication_scale(sigma, self.config.c2, s0, s1)
            if s2 > 0:
                g_dup = deduplication_guidance(step.eps_uncond, step.predict_with_caption(caption), s2)
                eps = check_finite(eps + g_dup, step, TERM_NAMES["dup"])
                terms.append("dup")
            scales["s2"] = s2
        if "sim" in self.config.terms:
            gradient = self.monitor.gradient(step.x_t, eps, step.alpha_bar, match)
            g_sim = dissimilarity_guidance(gradient, step.alpha_bar, self.config.c3)
            eps = check_finite(eps + g_sim, step, TERM_NAMES["sim"])
            scales["g_sim_norm"] = float(g_sim.flatten().norm())
            terms.append("sim")
        return Guided(eps, active=True, terms=terms, scales=scales, threshold=threshold)
