"""The training-loop core every EmojiMem trainer shares: resume, learning-rate schedule, EMA, logging, checkpoints,
a CPU-time budget and a clean stop on SIGTERM/SIGINT (docs/training.md)."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from memdemo.errors import MemdemoError
from memdemo.training.checkpoint import STATE_FILE, load_checkpoint, save_checkpoint, saved_config

# Settings that may change between a run and its resumption: more steps, other bookkeeping, another budget, and the
# caption dropout (a later phase may train the unconditional branch CFG needs on more of each batch).
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "log_every", "max_cpu_minutes", "stop_at", "caption_dropout")
RECORDED_CHANGES = ("steps", "caption_dropout")  # the changes a resume writes into the card: they shape the model


@dataclass
class LoopSettings:
    """How long to train and how often to log and checkpoint."""

    steps: int
    lr: float
    warmup_steps: int
    ema_decay: float
    checkpoint_every: int
    log_every: int
    max_cpu_minutes: float | None = None
    stop_at: int | None = None  # a step to stop (and checkpoint) at, before the schedule's end
    description: str = "train"
    clip_grad_norm: float | None = 1.0


def settings_from(config: object, description: str, **overrides: object) -> LoopSettings:
    """The loop settings a trainer's config carries under the same names (a missing budget means none); steps and
    batch size must be at least 1."""
    for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
        if getattr(config, name) < 1:
            raise MemdemoError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    stop_at = getattr(config, "stop_at", None)
    if stop_at is not None and not 1 <= stop_at <= config.steps:
        raise MemdemoError(f"--stop-at must be between 1 and --steps ({config.steps}), got {stop_at}")
    names = ("steps", "lr", "warmup_steps", "ema_decay", "checkpoint_every", "log_every", "max_cpu_minutes", "stop_at")
    values = {name: getattr(config, name, None) for name in names}
    return LoopSettings(**values, description=description, **overrides)


@dataclass
class LoopState:
    """Progress that survives a resume: steps done, wall and CPU seconds, and every resume."""

    step: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    resumes: list[dict] = field(default_factory=list)
    stopped_early: bool = False


def run_card(state: LoopState, config: object, device: str) -> dict:
    """What every trained model's card records about its run: hyperparameters, device, time, resumes, steps."""
    return {
        "hyperparameters": asdict(config),
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "train_seconds": round(state.seconds, 1),
        "cpu_seconds": round(state.cpu_seconds, 1),
        "resumes": state.resumes,
        "steps_done": state.step,
    }


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """EMA with warm-up min(decay, (1 + t)/(10 + t)), so early averages forget the random initialisation."""
    rate = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for averaged, current in zip(ema.parameters(), model.parameters(), strict=True):
            averaged.lerp_(current, 1 - rate)


def learning_rate(settings: LoopSettings, step: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def config_differences(saved: dict, wanted: dict, keys: set[str] | None = None) -> list[str]:
    """The settings (by default all but RESUMABLE_CHANGES) in which a checkpoint's config differs from the one asked
    for."""
    if keys is None:
        keys = (saved.keys() | wanted.keys()) - set(RESUMABLE_CHANGES)
    return [
        f"{key}: checkpoint {saved.get(key)!r}, asked {wanted.get(key)!r}"
        for key in sorted(keys)
        if saved.get(key) != wanted.get(key)
    ]


class _StopRequest:
    """Turns SIGTERM/SIGINT into a flag the loop checks after each step, so a checkpoint is never half-written."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopRequest:
        for number in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: no handler, the loop still runs
                self._previous[number] = signal.signal(number, self._request)
        return self

    def _request(self, *_: object) -> None:
        self.requested = True

    def __exit__(self, *_: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def run_loop(
    settings: LoopSettings,
    config: dict,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_step: Callable[[int], torch.Tensor],
    generator: torch.Generator,
    out: Path,
    on_checkpoint: Callable[[LoopState], None],
    progress: bool = True,
) -> LoopState:
    """Resume from out/checkpoint when it exists, then run `train_step(step) → loss` until `settings.steps`, the CPU
    budget, or a stop signal; checkpoint (and call `on_checkpoint`) every `checkpoint_every` steps and at the end."""
    out.mkdir(parents=True, exist_ok=True)
    checkpoint, state = out / "checkpoint", LoopState()
    if not (checkpoint / STATE_FILE).is_file() and any(checkpoint.glob("*.safetensors")):
        raise MemdemoError(
            f"{checkpoint} holds weights but no {STATE_FILE}: a save was interrupted; delete the folder to start over"
        )
    if (checkpoint / STATE_FILE).is_file():
        previous = saved_config(checkpoint)
        differences = config_differences(previous, config)
        if differences:
            raise MemdemoError(
                f"{checkpoint} was made with other settings ({'; '.join(differences)}); "
                "pass the same options to resume, or delete the folder to start over"
            )
        saved = load_checkpoint(checkpoint, model, ema, optimizer)
        state = LoopState(
            saved["step"], saved["seconds"], saved.get("cpu_seconds", saved["seconds"]), saved.get("resumes", [])
        )
        resume = {"step": state.step, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        changed = config_differences(previous, config, set(RECORDED_CHANGES) & config.keys() & previous.keys())
        state.resumes.append(resume | ({"changed": changed} if changed else {}))
        generator.set_state(torch.tensor(saved["generator"], dtype=torch.uint8))
    budget = None if settings.max_cpu_minutes is None else state.cpu_seconds + 60 * settings.max_cpu_minutes
    wall_start, cpu_start = time.perf_counter() - state.seconds, time.process_time() - state.cpu_seconds
    log = (out / "train_log.jsonl").open("a", encoding="utf-8")
    end = settings.steps if settings.stop_at is None else settings.stop_at
    bar = tqdm(
        range(state.step, end),
        initial=state.step,
        total=settings.steps,
        disable=not progress,
        desc=settings.description,
    )

    def save() -> None:
        state.seconds, state.cpu_seconds = time.perf_counter() - wall_start, time.process_time() - cpu_start
        record = {"step": state.step, "config": config, "seconds": state.seconds, "cpu_seconds": state.cpu_seconds}
        record |= {"resumes": state.resumes, "generator": generator.get_state().tolist()}
        save_checkpoint(checkpoint, model, ema, optimizer, record)
        on_checkpoint(state)

    with _StopRequest() as stop:
        for step in bar:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(settings, step)
            loss = train_step(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad_norm)
            optimizer.step()
            ema_update(ema, model, step, settings.ema_decay)
            state.step = step + 1
            over_budget = budget is not None and time.process_time() - cpu_start >= budget
            last = state.step == end or over_budget or stop.requested
            if state.step % settings.log_every == 0 or last:
                entry = {"step": state.step, "loss": round(loss.item(), 5), "lr": learning_rate(settings, step)}
                entry |= {
                    "seconds": round(time.perf_counter() - wall_start, 1),
                    "cpu_seconds": round(time.process_time() - cpu_start, 1),
                }
                log.write(json.dumps(entry) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if state.step % settings.checkpoint_every == 0 or last:
                save()
            if last:
                state.stopped_early = state.step < settings.steps
                break
    log.close()
    return state
