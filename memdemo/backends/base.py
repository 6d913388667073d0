"""The small protocol every model behind the sampling loop implements (docs/formulas.md, "Notation")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from memdemo.errors import MemdemoError

SCHEDULERS = ("ddim", "dpm++")
PREDICTION_TYPES = ("epsilon", "v_prediction")


class ModelError(MemdemoError):
    """A model that cannot be loaded or used; the message names the fix."""


@dataclass(frozen=True)
class TextEncoding:
    """Token states (N, L, D) per prompt, which prompts were cut at the token limit, and what the model read of each."""

    embeddings: torch.Tensor
    truncated: list[bool]
    kept: list[str] = field(default_factory=list)


def read_text(tokenizer, prompts: list[str], max_tokens: int) -> list[str]:
    """What a model reads of each prompt once it is cut to `max_tokens` tokens (special tokens dropped)."""
    ids = tokenizer(prompts, max_length=max_tokens, truncation=True)["input_ids"]
    return [tokenizer.decode(row, skip_special_tokens=True) for row in ids]


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


def v_to_epsilon(v: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """ε = √ᾱ_t·v + √(1 − ᾱ_t)·x_t, from x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε and v = √ᾱ_t·ε − √(1 − ᾱ_t)·x0."""
    a = alpha_bar.reshape(-1, *([1] * (x_t.dim() - 1))).to(x_t.dtype)
    return a.sqrt() * v + (1 - a).sqrt() * x_t


def make_scheduler(name: str, config: dict) -> SchedulerMixin:
    """A fresh DDIM or DPM-Solver++ scheduler over `config`'s noise schedule, never clipping x̂0 (Decisions §9).
    Every backend's `predict_noise` returns ε (a v-prediction is converted first), so the scheduler is told to read
    the model output as ε whatever prediction type the model's own scheduler config names."""
    if name == "ddim":
        return DDIMScheduler.from_config(
            config, clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon"
        )
    if name == "dpm++":
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", thresholding=False, prediction_type="epsilon"
        )
    raise ModelError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
