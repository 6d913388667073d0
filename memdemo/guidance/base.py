"""What a guidance policy sees at one step and what it returns: one loop, many policies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from memdemo.errors import MemdemoError


class GuidanceError(MemdemoError):
    """Guidance that produced a non-finite noise estimate, or a policy given invalid settings."""


@dataclass
class StepContext:
    """One mitigated-trajectory step: x_t, both noise predictions and the helpers that cost extra work."""

    index: int
    t: int
    alpha_bar: float
    x_t: torch.Tensor
    eps_uncond: torch.Tensor
    eps_cond: torch.Tensor
    cfg_scale: float
    cond_uncond_norm: float
    predict_with_caption: Callable[[str], torch.Tensor]  # ε(x_t, caption): one more UNet call (G_dup)


@dataclass
class Guided:
    """A policy's ε̂ and what it did, for the trace."""

    eps: torch.Tensor
    active: bool = False
    terms: list[str] = field(default_factory=list)
    scales: dict[str, float] = field(default_factory=dict)
    threshold: float | None = None
    transition: bool = False


class Policy(Protocol):
    """A per-run guidance rule; build a new one for every run (it may hold state such as d_t history)."""

    name: str

    def params(self) -> dict: ...

    def guide(self, step: StepContext) -> Guided: ...


def check_finite(eps: torch.Tensor, step: StepContext, term: str) -> torch.Tensor:
    """Stop the run with the step and the term named when guidance produced NaN or inf."""
    if not torch.isfinite(eps).all():
        raise GuidanceError(f"non-finite guided noise at step {step.index} (t = {step.t}) from {term}; lower its scale")
    return eps
