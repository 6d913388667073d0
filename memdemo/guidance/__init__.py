"""Guidance policies by method name: CFG, AMG and the transition-point family."""

from __future__ import annotations

from dataclasses import dataclass

from memdemo.guidance.amg import AMGPolicy, amg_config
from memdemo.guidance.base import GuidanceError, Guided, Policy, StepContext
from memdemo.guidance.cfg import classifier_free_guidance
from memdemo.guidance.similarity import SimilarityMonitor
from memdemo.guidance.transition import DEFAULT_SWITCH_T, TransitionPolicy

METHODS = {
    "baseline": "plain classifier-free guidance (the mitigated image equals the baseline)",
    "amg": "Anti-Memorization Guidance: G_spe, G_dup, G_sim gated by similarity (Chen et al. 2024)",
    "stp": "no guidance until a static transition t, then CFG (Jain et al. 2025)",
    "dtp": "no guidance until the first local minimum of ‖ε_c − ε_u‖, then CFG (Alg. 1)",
    "og-stp": "opposite guidance until a static transition t, then CFG (Eq. 5)",
    "og-dtp": "opposite guidance until the first local minimum of ‖ε_c − ε_u‖, then CFG (Alg. 1, v_OG = 1)",
}


@dataclass
class CFGPolicy:
    """ε̂ = ε_u + s0·(ε_c − ε_u)."""

    name: str = "baseline"

    def params(self) -> dict:
        return {}

    def guide(self, step: StepContext) -> Guided:
        eps = classifier_free_guidance(step.eps_uncond, step.eps_cond, step.cfg_scale)
        return Guided(eps, scales={"cfg": step.cfg_scale})


def make_policy(
    method: str,
    cfg: float,
    monitor: SimilarityMonitor | None = None,
    amg_preset: str = "main",
    switch_t: int = DEFAULT_SWITCH_T,
    pre_scale: float | None = None,
    **amg_overrides,
) -> Policy:
    """A fresh policy for one run. `pre_scale` overrides the transition methods' scale before the switch
    (default 0 for stp/dtp as in the paper, −s0 for og-*; the official scripts use 1.0 for DTP, −2.0 for OG+STP)."""
    if method == "baseline":
        return CFGPolicy()
    if method == "amg":
        if monitor is None:
            raise GuidanceError("AMG needs a reference index: pass --index indexes/emojimem-copydet-guide (or another)")
        feature = monitor.index.feature
        calibrated = getattr(feature, "threshold", None)
        return AMGPolicy(monitor, amg_config(amg_preset, feature.metric, calibrated, **amg_overrides))
    if method in ("stp", "dtp", "og-stp", "og-dtp"):
        default = -cfg if method.startswith("og") else 0.0
        scale = default if pre_scale is None else pre_scale
        return TransitionPolicy(method, dynamic=method.endswith("dtp"), pre_scale=scale, switch_t=switch_t)
    choices = "; ".join(f"{name}: {about}" for name, about in METHODS.items())
    raise GuidanceError(f"unknown method {method!r}; choose one of {choices}")


__all__ = ["METHODS", "GuidanceError", "Policy", "SimilarityMonitor", "make_policy"]
