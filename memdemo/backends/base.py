"""The small protocol every model behind the sampling loop implements (docs/formulas.md, "Notation")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from memdemo.errors import MemdemoError

SCHEDULERS = ("ddim", "dpm++")


class ModelError(MemdemoError):
    """A model that cannot be loaded or used; the message names the fix."""


@dataclass(frozen=True)
class TextEncoding:
    """Token states (N, L, D) per prompt and which prompts were cut at the token limit."""

    embeddings: torch.Tensor
    truncated: list[bool]


class Backend(Protocol):
    """Encode text, predict noise for a batch, decode differentiably, and make schedulers."""

    name: str
    device: torch.device
    dtype: torch.dtype
    sample_shape: tuple[int, int, int]
    image_size: int
    max_tokens: int

    @property
    def alphas_cumprod(self) -> torch.Tensor: ...

    def encode_text(self, prompts: list[str]) -> TextEncoding: ...

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor: ...

    def decode(self, x0: torch.Tensor) -> torch.Tensor: ...

    def make_scheduler(self, name: str) -> SchedulerMixin: ...


def make_scheduler(name: str, config: dict) -> SchedulerMixin:
    """A fresh DDIM or DPM-Solver++ scheduler over `config`'s noise schedule, never clipping x̂0 (Decisions §9)."""
    if name == "ddim":
        return DDIMScheduler.from_config(config, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    if name == "dpm++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", thresholding=False)
    raise ModelError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
