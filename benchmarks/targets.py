"""EmojiMem v2 targets, measured on a model: exact copies, clean samples, CPU speed, at a sweep of CFG scales.

Targets (the EmojiMem v2 issue): on all duplicated captions × 4 seeds, the nearest training image in pixel space is the
prompt's own for ≥ 90% of samples, and the median per-pixel MAE to it is ≤ 0.05; on holdout captions, the median
speckle (mean |x − median3×3(x)|) is within 1.3× of the training emoji's; one 50-step CFG sample takes ≤ 1.0 s on
this CPU (median of 5). Samples are not post-processed (the display clamps to [0, 1], nothing else).

Run: python -m benchmarks.targets --model assets/emojimem-ddpm → benchmarks/targets.md, benchmarks/targets.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from memdemo.backends import load_backend
from memdemo.bench import median_sample_seconds
from memdemo.data.emojimem import EmojiMem
from memdemo.evaluation.quality import measure_copies
from memdemo.sampling import Request

HERE = Path(__file__).resolve().parent
TARGETS = {"own_nn": 0.90, "mae_own": 0.05, "speckle_holdout": 1.3, "seconds": 1.0}


def met(row: dict) -> dict[str, bool]:
    return {
        "own_nn": row["own_nn"] >= TARGETS["own_nn"],
        "mae_own": row["mae_own"] <= TARGETS["mae_own"],
        "speckle_holdout": row["speckle_holdout"] <= TARGETS["speckle_holdout"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emojimem-ddpm")
    parser.add_argument("--cfg", type=float, nargs="+", default=[2.0, 3.0, 5.0, 7.5])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "targets")
    args = parser.parse_args()
    torch.manual_seed(0)
    dataset = EmojiMem.load()
    backend = load_backend(args.model, "cpu")
    seconds = median_sample_seconds(backend, Request("warning", steps=50), args.repeats)
    rows = []
    for cfg in args.cfg:
        row = measure_copies(backend, dataset, cfg, args.steps, list(range(args.seeds))).row()
        rows.append({**row, "met": met(row)})
        print(json.dumps(rows[-1]), flush=True)
    passing = [row["cfg"] for row in rows if all(row["met"].values())]
    lines = [
        f"# EmojiMem v2 targets: `{args.model}`",
        "",
        f"`python -m benchmarks.targets --model {args.model}`: every duplicated caption and every holdout caption × "
        f"{args.seeds} seeds, DDIM {args.steps} steps, no post-processing. Targets: own-NN ≥ 0.90, MAE to own ≤ 0.05, "
        "holdout speckle ≤ 1.3× the training emoji's.",
        "",
        "| CFG | own-NN (pixel) | MAE to own | speckle, duplicated | speckle, holdout | all three met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ok = "yes" if all(row["met"].values()) else "no (" + ", ".join(k for k, v in row["met"].items() if not v) + ")"
        lines.append(
            f"| {row['cfg']:g} | {row['own_nn']:.3f} | {row['mae_own']:.3f} | {row['speckle_duplicated']:.2f}× "
            f"| {row['speckle_holdout']:.2f}× | {ok} |"
        )
    device = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    lines += [
        "",
        f"CPU: one 50-step CFG sample, median of {args.repeats}: **{seconds:.2f} s** ({device}; target ≤ 1.0 s: "
        f"{'met' if seconds <= TARGETS['seconds'] else 'missed'}).",
        "",
        f"CFG scales meeting all three: {', '.join(f'{c:g}' for c in passing) or 'none'}.",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")
    card = {"model": args.model, "seeds": args.seeds, "seconds": seconds, "rows": rows, "passing_cfg": passing}
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
