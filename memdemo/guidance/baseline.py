"""Plain classifier-free guidance as a method: the mitigated trajectory equals the baseline."""

from __future__ import annotations

from dataclasses import dataclass

from memdemo.guidance.base import Guided, StepContext
from memdemo.guidance.cfg import classifier_free_guidance
from memdemo.guidance.registry import BuildContext, MethodSpec


@dataclass
class CFGPolicy:
    """ε̂ = ε_u + s0·(ε_c − ε_u)."""

    name: str = "baseline"

    def params(self) -> dict:
        return {}

    def guide(self, step: StepContext) -> Guided:
        eps = classifier_free_guidance(step.eps_uncond, step.eps_cond, step.cfg_scale)
        return Guided(eps, scales={"cfg": step.cfg_scale})


def build_cfg(params: dict, context: BuildContext) -> CFGPolicy:
    return CFGPolicy()


BASELINE = MethodSpec(
    "baseline", "No mitigation", "plain classifier-free guidance", "Ho & Salimans 2022; AMG paper Eq. 7", (), build_cfg
)
