"""Anti-Memorization Guidance (Chen, Liu, Xu, CVPR 2024): despecification, caption deduplication and
dissimilarity guidance, each gated by 1{σ_t > λ_t} (Eq. 10–17)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch

from memdemo.guidance.base import TERM_NAMES, GuidanceError, Guided, StepContext, check_finite
from memdemo.guidance.cfg import classifier_free_guidance, predicted_x0
from memdemo.guidance.registry import BuildContext, MethodSpec, Param, Variant
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


def official_c3(c3: float, sigma: float, t: int, floor: float = 0.3) -> float:
    """The official AMG-SD code's G_sim scale c3·(σ − 0.3)·exp((1000 − t)/170), not in the paper; `floor` is 0.3 on
    SSCD's scale, and the factor is clamped at 0 so that G_sim can never pull toward the training image."""
    return c3 * max(sigma - floor, 0.0) * math.exp((1000 - t) / 170)


def split_constant(s0: float, gate_end: float) -> float:
    """c1 = c2 = (s0 − 1)/(2·λ): at σ = λ, Eq. 13 gives s1 = (s0 − 1)/2 and Eq. 15 leaves s2 = (s0 − 1)/2, so
    G_spe and G_dup both act once the gate opens (docs/decisions.md §5). A gate at or below 0 (always open) splits at
    σ = 1, the top of the scale."""
    return (s0 - 1) / (2 * (gate_end if gate_end > 0 else 1.0))


@dataclass(frozen=True)
class AMGConfig:
    """Which terms act, their constants, the threshold schedule, and the variant.

    c1 or c2 None: `split_constant` at the run's s0 and the gate's final λ. official=True follows the official SD
    code instead of the paper: G_spe whenever σ > 0, c2 = (s0 − 1 − s1)/0.3, G_dup only for a duplicated caption and
    held for 10 steps, σ recomputed before G_sim, c3 scaled by `official_c3`. `official_shift` moves those SSCD-scale
    numbers (0, 0.3, λ_t) onto a calibrated descriptor's scale.
    """

    terms: tuple[str, ...] = AMG_TERMS
    c1: float | None = None
    c2: float | None = None
    c3: float = 100.0
    schedule: str = "official"
    constant_threshold: float = 0.3
    sim_through_unet: bool = False
    official: bool = False
    official_shift: float = 0.0

    def gate(self, t: int) -> float:
        """λ_t; official-sd's SSCD-scale schedule is shifted onto the descriptor's scale (an override is not)."""
        shift = self.official_shift if self.schedule == "official" else 0.0
        return threshold_at(self.schedule, t, self.constant_threshold) + shift

    def resolved(self, s0: float) -> AMGConfig:
        """c1 and c2 filled in for guidance scale s0."""
        split = split_constant(s0, self.gate(0))
        return replace(self, c1=split if self.c1 is None else self.c1, c2=split if self.c2 is None else self.c2)


# The paper gives no constants. c1 and c2 follow `split_constant`; official-sd keeps the official c1 = 13. c3 is per
# similarity: ‖∇σ‖ of the pixel nL2 is small, so pixel G_sim needs ≈1e3 to act (docs/decisions.md §5); cosine uses
# the official 100. A descriptor with a calibrated copy threshold τ gets λ_t ending at τ; its c3 was chosen on
# EmojiMem by eye and by the scoring descriptor. `strong` multiplies c3 by 5, the paper's "increasing AMG's guidance
# scale" (c1 and c2 already use all of s0 − 1 at the gate).
PRESETS = {
    ("main", "l2"): AMGConfig(c3=1e3, schedule="emojimem-pixel"),
    ("main", "cosine"): AMGConfig(c3=100.0, schedule="official"),
    ("strong", "l2"): AMGConfig(c3=5e3, schedule="emojimem-pixel"),
    ("strong", "cosine"): AMGConfig(c3=500.0, schedule="official"),
    ("official-sd", "l2"): AMGConfig(c1=13.0, c3=100.0, schedule="official", official=True),
    ("official-sd", "cosine"): AMGConfig(c1=13.0, c3=100.0, schedule="official", official=True),
    ("main", "calibrated"): AMGConfig(c3=COPYDET_C3, schedule="calibrated"),
    ("strong", "calibrated"): AMGConfig(c3=5 * COPYDET_C3, schedule="calibrated"),
    ("official-sd", "calibrated"): AMGConfig(c1=13.0, c3=100.0, schedule="official", official=True),
}
AMG_PRESETS = ("main", "strong", "official-sd")
OFFICIAL_DUP_HOLD_STEPS = 10
OFFICIAL_GATE_END = 0.4  # official λ_t at t = 0


def amg_config(preset: str, metric: str, calibrated: float | None = None, **overrides) -> AMGConfig:
    """A preset for the index's similarity kind (a feature with a calibrated threshold τ gets the `calibrated`
    presets, with τ as constant_threshold, and official-sd shifted so its λ_0 is τ), with any non-None overrides."""
    kind = "calibrated" if calibrated is not None else metric
    if (preset, kind) not in PRESETS:
        raise GuidanceError(f"unknown AMG preset {preset!r}; choose one of: {', '.join(AMG_PRESETS)}")
    base = PRESETS[preset, kind]
    if calibrated is not None:
        base = replace(base, constant_threshold=calibrated)
        if base.official:
            base = replace(base, official_shift=calibrated - OFFICIAL_GATE_END)
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
        s0 = step.cfg_scale
        config = self.config = self.config.resolved(s0)
        eps = classifier_free_guidance(step.eps_uncond, step.eps_cond, s0)
        x0 = predicted_x0(step.x_t, eps, step.alpha_bar)
        match = self.monitor.match(x0)[0]
        sigma = match.similarity
        threshold = config.gate(step.t)
        gated = sigma > threshold
        guided = Guided(eps, threshold=threshold, scales={"sigma": sigma, "threshold": threshold})
        s1 = 0.0
        if "spe" in config.terms and (sigma > config.official_shift if config.official else gated):
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
            c2 = (s0 - 1 - s1) / 0.3
            caption, s2 = self.dup_caption, max(min(c2 * (sigma - self.config.official_shift), s0 - 1 - s1), 0.0)
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
        config = self.config
        floor = 0.3 + config.official_shift
        c3 = official_c3(config.c3, match.similarity, step.t, floor) if config.official else config.c3
        g_sim = dissimilarity_guidance(gradient, step.alpha_bar, c3)
        self._add(guided, "sim", g_sim, step, g_sim_norm=float(g_sim.flatten().norm()), c3=c3)


AMG_PARAMS = (
    Param("preset", str, "main", "AMG preset", "constants and λ_t schedule", choices=AMG_PRESETS),
    Param("terms", tuple, AMG_TERMS, "AMG terms", "which of G_spe, G_dup, G_sim act", choices=AMG_TERMS),
    Param("c1", float, None, "c1 (Eq. 13)", "despecification constant (blank: preset)", 0, 1000, advanced=True),
    Param("c2", float, None, "c2 (Eq. 15)", "deduplication constant (blank: preset)", 0, 1000, advanced=True),
    Param("c3", float, None, "c3 (Eq. 17)", "dissimilarity scale (blank: preset)", 0, 1e5, advanced=True),
    Param(
        "schedule",
        str,
        None,
        "λ_t schedule",
        "threshold schedule (blank: preset)",
        choices=THRESHOLD_SCHEDULES,
        advanced=True,
    ),
    Param(
        "threshold",
        float,
        None,
        "λ (constant schedule)",
        "the constant schedule's λ (blank: preset)",
        -1,
        1,
        advanced=True,
    ),
    Param(
        "sim_through_unet", bool, False, "G_sim through the UNet", "differentiate σ through the UNet too", advanced=True
    ),
)


def build_amg(params: dict, context: BuildContext) -> AMGPolicy:
    """AMG on the context's similarity monitor, its preset for that similarity, then the given overrides."""
    feature = context.monitor.index.feature
    overrides = {key: params[key] for key in ("terms", "c1", "c2", "c3", "schedule", "sim_through_unet")}
    config = amg_config(
        params["preset"], feature.metric, getattr(feature, "threshold", None),
        constant_threshold=params["threshold"], **overrides,
    )  # fmt: skip
    return AMGPolicy(context.monitor, config.resolved(context.cfg))


AMG = MethodSpec(
    "amg", "Anti-Memorization Guidance", "G_spe, G_dup and G_sim, each gated by σ_t > λ_t",
    "Chen, Liu, Xu, CVPR 2024, Eq. 10–17", AMG_PARAMS, build_amg, needs_monitor=True,
)  # fmt: skip
AMG_VARIANTS = (
    Variant("amg-main", "amg", {"preset": "main"}, "AMG main"),
    Variant("amg-strong", "amg", {"preset": "strong"}, "AMG strong"),
    Variant("amg-official-sd", "amg", {"preset": "official-sd"}, "AMG, the authors' SD code"),
    Variant("amg-spe", "amg", {"terms": ("spe",)}, "G_spe only"),
    Variant("amg-dup", "amg", {"terms": ("dup",)}, "G_dup only"),
    Variant("amg-sim", "amg", {"terms": ("sim",)}, "G_sim only"),
    Variant("amg-no-sim", "amg", {"terms": ("spe", "dup")}, "G_spe + G_dup"),
    Variant("amg-constant-threshold", "amg", {"schedule": "constant"}, "AMG, constant λ"),
)
