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
    predict_pair: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # x ↦ (ε_u, ε_c) at this t


@dataclass
class Guided:
    """A policy's ε̂ and what it did, for the trace."""

    eps: torch.Tensor
    active: bool = False
    terms: list[str] = field(default_factory=list)
    scales: dict[str, float] = field(default_factory=dict)
    threshold: float | None = None
    transition: bool = False
    fallback: bool = False


class Policy(Protocol):
    """A per-run guidance rule; build a new one for every run (it may hold state such as d_t history)."""

    name: str

    def params(self) -> dict: ...

    def guide(self, step: StepContext) -> Guided: ...


TERM_NAMES = {"spe": "G_spe", "dup": "G_dup", "sim": "G_sim"}


def check_finite(values: torch.Tensor, step: StepContext, source: str) -> torch.Tensor:
    """Stop the run, naming the step and the term, when guidance produced NaN or inf."""
    if not torch.isfinite(values).all():
        raise GuidanceError(f"non-finite values at step {step.index} (t = {step.t}) from {source}; lower its scale")
    return values
