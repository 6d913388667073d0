"""Resumable training checkpoints without pickle: tensors in safetensors, everything else in JSON."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

STATE_FILE = "state.json"


def save_checkpoint(
    folder: Path, model: torch.nn.Module, ema: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Write model, EMA and AdamW tensors, the RNG state and `state` (step, config, ...) atomically enough to resume."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(folder / "model.safetensors")
    )
    save_file({k: v.detach().contiguous().cpu() for k, v in ema.state_dict().items()}, str(folder / "ema.safetensors"))
    optimizer_state = optimizer.state_dict()
    tensors = {
        f"{param}.{name}": value.detach().contiguous().cpu().reshape(value.shape)
        for param, slots in optimizer_state["state"].items()
        for name, value in slots.items()
    }
    save_file(tensors, str(folder / "optimizer.safetensors"))
    state = {**state, "param_groups": optimizer_state["param_groups"]}
    (folder / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")


def load_checkpoint(
    folder: Path, model: torch.nn.Module, ema: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict:
    """Restore what `save_checkpoint` wrote; returns its `state`."""
    state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    ema.load_state_dict(load_file(str(folder / "ema.safetensors")))
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(folder / "optimizer.safetensors")).items():
        param, name = key.split(".", 1)
        slots.setdefault(int(param), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": state.pop("param_groups")})
    return state
