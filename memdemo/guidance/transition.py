"""Transition point guidance (Jain et al., CVPR 2025): low or opposite guidance until the trajectory leaves the
attraction basin, then CFG. Static (fixed t) or dynamic (first local minimum of d_t, Alg. 1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from memdemo.guidance.base import Guided, StepContext
from memdemo.guidance.cfg import classifier_free_guidance

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
        terms = ["transition-fallback" if self.fell_back else "transition"] if switching else []
        return Guided(
            eps=classifier_free_guidance(step.eps_uncond, step.eps_cond, scale),
            active=self.switched_at is None,
            terms=terms,
            scales={"cfg": scale},
            transition=switching,
        )
