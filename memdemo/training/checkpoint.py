"""Resumable training checkpoints without pickle: tensors in safetensors, everything else in JSON."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from memdemo.errors import MemdemoError

STATE_FILE = "state.json"
TENSOR_FILES = ("model.safetensors", "ema.safetensors")
# One file per AdamW slot (exp_avg, exp_avg_sq, step) keeps every tracked file under 16 MB.
OPTIMIZER_PATTERN = "optimizer-*.safetensors"


def _cpu_tensors(module_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: value.detach().contiguous().cpu() for name, value in module_state.items()}


def save_checkpoint(
    folder: Path, model: torch.nn.Module, ema: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Write model, EMA and AdamW tensors and `state` (step, config, RNG, ...); state.json goes last, so a checkpoint
    interrupted while writing is detected as corrupt rather than resumed half-old, half-new."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATE_FILE).unlink(missing_ok=True)
    save_file(_cpu_tensors(model.state_dict()), str(folder / TENSOR_FILES[0]))
    save_file(_cpu_tensors(ema.state_dict()), str(folder / TENSOR_FILES[1]))
    optimizer_state = optimizer.state_dict()
    by_slot: dict[str, dict[str, torch.Tensor]] = {}
    for param, slots in optimizer_state["state"].items():
        for name, value in slots.items():
            by_slot.setdefault(name, {})[f"{param}.{name}"] = value.detach().contiguous().cpu().reshape(value.shape)
    for old in folder.glob(OPTIMIZER_PATTERN):
        old.unlink()
    for name, tensors in by_slot.items():
        save_file(tensors, str(folder / f"optimizer-{name}.safetensors"))
    state = {**state, "param_groups": optimizer_state["param_groups"]}
    temporary = folder / (STATE_FILE + ".tmp")
    temporary.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    temporary.replace(folder / STATE_FILE)


def saved_config(folder: Path) -> dict:
    """The training config a checkpoint was made with, read before any tensor so a mismatch can be named."""
    try:
        return json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))["config"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise MemdemoError(f"{folder / STATE_FILE} is unreadable ({error}); delete {folder} to start over") from error


def load_checkpoint(
    folder: Path, model: torch.nn.Module, ema: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict:
    """Restore what `save_checkpoint` wrote; returns its `state`. A truncated, corrupt or mismatched checkpoint raises
    a MemdemoError that names the folder and the fix."""
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        model_state, ema_state = (load_file(str(folder / name)) for name in TENSOR_FILES)
        model.load_state_dict(model_state)
        ema.load_state_dict(ema_state)
        optimizer_files = sorted(folder.glob(OPTIMIZER_PATTERN))
        if not optimizer_files:
            raise OSError(f"no {OPTIMIZER_PATTERN} files")
        optimizer_tensors: dict[str, torch.Tensor] = {}
        for path in optimizer_files:
            optimizer_tensors |= load_file(str(path))
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in optimizer_tensors.items():
            param, name = key.split(".", 1)
            slots.setdefault(int(param), {})[name] = value
        optimizer.load_state_dict({"state": slots, "param_groups": state.pop("param_groups")})
        missing = [key for key in ("step", "config", "seconds", "generator") if key not in state]
        if missing:
            raise KeyError(f"state.json lacks {', '.join(missing)}")
    except (
        OSError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        SafetensorError,
        KeyError,
        ValueError,
        RuntimeError,
    ) as error:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise MemdemoError(
            f"the checkpoint in {folder} is truncated, corrupt or of another architecture ({reason}); "
            "delete the folder to start over"
        ) from error
    return state
