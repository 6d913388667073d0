"""Transition point guidance (Jain et al., CVPR 2025): low or opposite guidance until the trajectory leaves the
attraction basin, then CFG. Static (fixed t) or dynamic (first local minimum of d_t, Alg. 1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from memdemo.guidance.base import Guided, StepContext
from memdemo.guidance.cfg import classifier_free_guidance
from memdemo.guidance.registry import BuildContext, MethodSpec, Param

DEFAULT_SWITCH_T = 500  # the paper's static transition on fine-tuned SD; EmojiMem's is calibrated in its model card


def is_transition(history: list[float]) -> bool:
    """Alg. 1 line 5: d_{j−2} > d_{j−1} < d_j, the previous step was a strict local minimum."""
    return len(history) >= 3 and history[-3] > history[-2] < history[-1]


@dataclass
class TransitionPolicy:
    """Scale `pre_scale` (0: paper, 1: official DTP, −s: opposite guidance, Eq. 5) until the switch, then s0.

    dynamic=True switches at the first local minimum of d_t and falls back to `switch_t` if none appears by then.
    """

    name: str
    dynamic: bool
    pre_scale: float
    switch_t: int = DEFAULT_SWITCH_T
    switched_at: int | None = None
    fell_back: bool = False
    history: list[float] = field(default_factory=list)

    def params(self) -> dict:
        return {"dynamic": self.dynamic, "pre_scale": self.pre_scale, "switch_t": self.switch_t}

    def guide(self, step: StepContext) -> Guided:
        self.history.append(step.cond_uncond_norm)
        switching = False
        if self.switched_at is None:
            if self.dynamic and is_transition(self.history):
                switching = True
            elif step.t <= self.switch_t:
                switching, self.fell_back = True, self.dynamic
        if switching:
            self.switched_at = step.index
        scale = step.cfg_scale if self.switched_at is not None else self.pre_scale
        return Guided(
            eps=classifier_free_guidance(step.eps_uncond, step.eps_cond, scale),
            active=self.switched_at is None,
            scales={"cfg": scale},
            transition=switching,
            fallback=switching and self.fell_back,
        )


SWITCH_T = Param(
    "switch_t", int, DEFAULT_SWITCH_T, "switch t", "static switch / dynamic fallback timestep (0–999)", 0, 999
)
PRE_SCALE = Param("pre_scale", float, 0.0, "scale before the switch", "guidance scale before the switch", -30, 30)
OG_SCALE = Param(
    "og_scale", float, None, "opposite guidance scale λ", "scale −λ before the switch (blank: λ = s0)", 0, 30
)


def _transition_builder(dynamic: bool, opposite: bool):
    def build(params: dict, context: BuildContext) -> TransitionPolicy:
        if opposite:
            pre_scale = -(context.cfg if params["og_scale"] is None else params["og_scale"])
        else:
            pre_scale = params["pre_scale"]
        name = ("og-" if opposite else "") + ("dtp" if dynamic else "stp")
        return TransitionPolicy(name, dynamic=dynamic, pre_scale=pre_scale, switch_t=params["switch_t"])

    return build


JAIN = "Jain et al., CVPR 2025"
STP = MethodSpec(
    "stp", "Static transition point", "no guidance until a fixed t, then CFG", f"{JAIN}, §5",
    (SWITCH_T, PRE_SCALE), _transition_builder(dynamic=False, opposite=False),
)  # fmt: skip
DTP = MethodSpec(
    "dtp", "Dynamic transition point", "no guidance until the first local minimum of ‖ε_c − ε_u‖, then CFG",
    f"{JAIN}, Alg. 1", (SWITCH_T, PRE_SCALE), _transition_builder(dynamic=True, opposite=False),
)  # fmt: skip
OG_STP = MethodSpec(
    "og-stp", "Opposite guidance + static transition", "opposite guidance until a fixed t, then CFG",
    f"{JAIN}, Eq. 5", (SWITCH_T, OG_SCALE), _transition_builder(dynamic=False, opposite=True),
)  # fmt: skip
OG_DTP = MethodSpec(
    "og-dtp", "Opposite guidance + dynamic transition",
    "opposite guidance until the first local minimum of ‖ε_c − ε_u‖, then CFG", f"{JAIN}, Eq. 5 + Alg. 1",
    (SWITCH_T, OG_SCALE), _transition_builder(dynamic=True, opposite=True),
)  # fmt: skip
