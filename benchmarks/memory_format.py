"""EmojiMem's UNet on CPU with NCHW weights and inputs vs channels_last (what EmojiMemBackend uses on CPU): one
plain 50-step CFG trajectory, interleaved rounds in one run.

Run: python -m benchmarks.memory_format [--rounds 7] → benchmarks/memory_format.md
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from memdemo.backends import load_backend
from memdemo.bench import interleaved_medians, one_trajectory
from memdemo.sampling import Request

HERE = Path(__file__).resolve().parent
LAYOUTS = {"NCHW (contiguous)": torch.contiguous_format, "channels_last": torch.channels_last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    request = Request("warning", steps=50)
    runs = {}
    for name, memory_format in LAYOUTS.items():
        backend = load_backend("emojimem-ddpm", "cpu")
        backend.set_memory_format(memory_format)
        runs[name] = lambda backend=backend: one_trajectory(backend, request)
    seconds = interleaved_medians(runs, rounds)
    reference = seconds["NCHW (contiguous)"]
    lines = ["# EmojiMem UNet memory format on CPU", ""]
    lines += [f"`python -m benchmarks.memory_format --rounds {rounds}`: one 50-step CFG trajectory (batch 2 per step), "
              f"“warning”, median of {rounds} interleaved rounds after a warm-up, one run ({platform.machine()}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}).", ""]  # fmt: skip
    lines += ["| layout | median s | × NCHW |", "|---|---|---|"]
    lines += [f"| {name} | {value:.2f} | {value / reference:.2f}× |" for name, value in seconds.items()]
    (HERE / "memory_format.md").write_text("\n".join([*lines, ""]), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
