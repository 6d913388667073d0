"""Anti-Memorization Guidance (Chen, Liu, Xu, CVPR 2024): despecification, caption deduplication and
dissimilarity guidance, each gated by 1{σ_t > λ_t} (Eq. 10–17)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch

from memdemo.guidance.base import TERM_NAMES, GuidanceError, Guided, StepContext, check_finite
from memdemo.guidance.cfg import classifier_free_guidance, predicted_x0
from memdemo.guidance.similarity import SimilarityMonitor
from memdemo.guidance.thresholds import THRESHOLD_SCHEDULES, threshold_at
from memdemo.reference.index import Match

AMG_TERMS = ("spe", "dup", "sim")
COPYDET_C3 = 300.0


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


def official_c3(c3: float, sigma: float, t: int) -> float:
    """The official AMG-SD code's G_sim scale c3·(σ − 0.3)·exp((1000 − t)/170); not in the paper."""
    return c3 * (sigma - 0.3) * math.exp((1000 - t) / 170)


@dataclass(frozen=True)
class AMGConfig:
    """Which terms act, their constants, the threshold schedule, and the variant.

    official=True follows the official SD code instead of the paper: G_spe whenever σ > 0, c2 = (s0 − 1 − s1)/0.3,
    G_dup only for a duplicated caption and held for 10 steps, σ recomputed before G_sim, c3 scaled by `official_c3`.
    """

    terms: tuple[str, ...] = AMG_TERMS
    c1: float = 13.0
    c2: float = 21.7
    c3: float = 100.0
    schedule: str = "official"
    constant_threshold: float = 0.3
    sim_through_unet: bool = False
    official: bool = False


# The paper gives no constants. c1 = 13 is the official code's (s1 reaches s0 − 1 = 6.5 at σ = 0.5); c2 = 6.5/0.3
# lets s2 reach its cap at σ = 0.3, as the official c2 = (s0 − 1 − s1)/0.3 does. c3 is per similarity: ‖∇σ‖ of the
# pixel nL2 is small, so pixel G_sim needs ≈1e3 to act (docs/decisions.md §5); cosine uses the official 100.
# A cosine descriptor with its own calibrated copy threshold τ (copydet) gets λ_t ending at τ; its c3 was chosen on
# EmojiMem by eye and by the scoring descriptor (benchmarks/amg_copydet.md).
# `strong` doubles c1, c2 and multiplies c3 by 5, the paper's "increasing AMG's guidance scale".
PRESETS = {
    ("main", "l2"): AMGConfig(c3=1e3, schedule="emojimem-pixel"),
    ("main", "cosine"): AMGConfig(c3=100.0, schedule="official"),
    ("strong", "l2"): AMGConfig(c1=26.0, c2=43.4, c3=5e3, schedule="emojimem-pixel"),
    ("strong", "cosine"): AMGConfig(c1=26.0, c2=43.4, c3=500.0, schedule="official"),
    ("official-sd", "l2"): AMGConfig(c1=13.0, c3=100.0, schedule="official", official=True),
    ("official-sd", "cosine"): AMGConfig(c1=13.0, c3=100.0, schedule="official", official=True),
    ("main", "calibrated"): AMGConfig(c3=COPYDET_C3, schedule="calibrated"),
    ("strong", "calibrated"): AMGConfig(c1=26.0, c2=43.4, c3=5 * COPYDET_C3, schedule="calibrated"),
    ("official-sd", "calibrated"): AMGConfig(c1=13.0, c3=100.0, schedule="official", official=True),
}
AMG_PRESETS = ("main", "strong", "official-sd")
OFFICIAL_DUP_HOLD_STEPS = 10


def amg_config(preset: str, metric: str, calibrated: float | None = None, **overrides) -> AMGConfig:
    """A preset for the index's similarity kind (a feature with a calibrated threshold τ gets the `calibrated`
    presets, with τ as constant_threshold), with any non-None overrides (c1, c2, c3, terms, schedule ...)."""
    kind = "calibrated" if calibrated is not None else metric
    if (preset, kind) not in PRESETS:
        raise GuidanceError(f"unknown AMG preset {preset!r}; choose one of: {', '.join(AMG_PRESETS)}")
    base = PRESETS[preset, kind]
    if calibrated is not None:
        base = replace(base, constant_threshold=calibrated)
    config = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    unknown = set(config.terms) - set(AMG_TERMS)
    if unknown or not config.terms:
        raise GuidanceError(f"AMG terms must be a non-empty subset of {', '.join(AMG_TERMS)}, got {config.terms}")
    if config.schedule not in THRESHOLD_SCHEDULES:
        raise GuidanceError(f"unknown threshold schedule {config.schedule!r}; choose one of {THRESHOLD_SCHEDULES}")
    return config


@dataclass
class AMGPolicy:
    """σ_t of the CFG x̂0 gates the active terms (paper form, or the official code's with config.official)."""

    monitor: SimilarityMonitor
    config: AMGConfig = field(default_factory=AMGConfig)
    name: str = "amg"
    dup_hold: int = 0
    dup_caption: str | None = None

    def params(self) -> dict:
        return asdict(self.config)

    def guide(self, step: StepContext) -> Guided:
        config, s0 = self.config, step.cfg_scale
        eps = classifier_free_guidance(step.eps_uncond, step.eps_cond, s0)
        x0 = predicted_x0(step.x_t, eps, step.alpha_bar)
        match = self.monitor.match(x0)[0]
        sigma = match.similarity
        threshold = threshold_at(config.schedule, step.t, config.constant_threshold)
        gated = sigma > threshold
        guided = Guided(eps, threshold=threshold, scales={"sigma": sigma, "threshold": threshold})
        s1 = 0.0
        if "spe" in config.terms and (sigma > 0 if config.official else gated):
            s1 = despecification_scale(sigma, config.c1, s0)
            self._add(guided, "spe", despecification_guidance(step.eps_uncond, step.eps_cond, s1), step, s1=s1)
        if "dup" in config.terms:
            self._deduplicate(guided, step, x0, match, gated, s1)
        if "sim" in config.terms:
            if config.official:
                match = self.monitor.match(predicted_x0(step.x_t, guided.eps, step.alpha_bar))[0]
                guided.scales["sigma_before_sim"] = match.similarity
            sim_gate = match.similarity > threshold if config.official else gated
            if sim_gate:
                self._dissimilarity(guided, step, match, s0 - s1)
        guided.active = bool(guided.terms)
        return guided

    def _add(self, guided: Guided, term: str, value: torch.Tensor, step: StepContext, **scales: float) -> None:
        guided.eps = check_finite(guided.eps + value, step, TERM_NAMES[term])
        guided.terms.append(term)
        guided.scales.update(scales)

    def _deduplicate(
        self, guided: Guided, step: StepContext, x0: torch.Tensor, match: Match, gated: bool, s1: float
    ) -> None:
        """G_dup toward the duplicated caption y_N (the official rule), else the nearest image's caption."""
        sigma, s0 = match.similarity, step.cfg_scale
        if self.config.official:
            if gated and self.dup_hold == 0:
                self.dup_caption = self.monitor.duplicate_caption(x0)
                self.dup_hold = OFFICIAL_DUP_HOLD_STEPS if self.dup_caption else 0
            if self.dup_hold == 0:
                return
            self.dup_hold -= 1
            caption, s2 = self.dup_caption, max(min((s0 - 1 - s1) / 0.3 * sigma, s0 - 1 - s1), 0.0)
        elif gated:
            caption = self.monitor.duplicate_caption(x0) or match.caption
            s2 = deduplication_scale(sigma, self.config.c2, s0, s1)
        else:
            return
        if s2 > 0:
            g_dup = deduplication_guidance(step.eps_uncond, step.predict_with_caption(caption), s2)
            self._add(guided, "dup", g_dup, step, s2=s2)

    def _dissimilarity(self, guided: Guided, step: StepContext, match: Match, cfg_scale: float) -> None:
        """G_sim from ∇σ with ε̂ fixed, or recomputed through the UNet at the current despecified scale."""
        eps_of_x = None
        if self.config.sim_through_unet:
            offset = guided.eps - classifier_free_guidance(step.eps_uncond, step.eps_cond, cfg_scale)

            def eps_of_x(x: torch.Tensor) -> torch.Tensor:
                return classifier_free_guidance(*step.predict_pair(x), cfg_scale) + offset

        gradient = self.monitor.gradient(step.x_t, guided.eps, step.alpha_bar, match, eps_of_x)
        c3 = official_c3(self.config.c3, match.similarity, step.t) if self.config.official else self.config.c3
        g_sim = dissimilarity_guidance(gradient, step.alpha_bar, c3)
        self._add(guided, "sim", g_sim, step, g_sim_norm=float(g_sim.flatten().norm()), c3=c3)
