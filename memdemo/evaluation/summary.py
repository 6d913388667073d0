"""Summary of samples.jsonl per (model, prompt set, method): similarity tail, copy shares, own-NN rate, speed."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from memdemo.evaluation.methods import EvaluationError
from memdemo.evaluation.runner import SAMPLES_FILE, read_rows
from memdemo.reference.metrics import NL2_COPY_THRESHOLD

STRICT_NL2 = 1.0
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
COLUMNS = ("model", "prompt_set", "method", "n", "p95_similarity", "max_similarity", "copy_share_nl2_lt_1.4",
           "share_nl2_lt_1.0", "own_nn_rate", "own_n", "mean_seconds")  # fmt: skip


def _share(flags: list[bool]) -> float | None:
    """Fraction of True, None for no values."""
    return sum(flags) / len(flags) if flags else None


def _mean(values: list[float]) -> float | None:
    """Arithmetic mean, None for no values."""
    return sum(values) / len(values) if values else None


def summarize(rows: list[dict]) -> list[dict]:
    """One summary row per (model, prompt set, method), in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["prompt_set"], row["method"]), []).append(row)
    table = []
    for (model, prompt_set, method), members in groups.items():
        sims = [r["similarity"] for r in members if r.get("similarity") is not None]
        nl2s = [r["nl2"] for r in members if r.get("nl2") is not None]
        owns = [bool(r["own"]) for r in members if r.get("own") is not None]
        seconds = [r["seconds"] for r in members if r.get("seconds") is not None]
        table.append(
            {
                "model": model,
                "prompt_set": prompt_set,
                "method": method,
                "n": len(members),
                "p95_similarity": float(np.percentile(sims, 95)) if sims else None,
                "max_similarity": max(sims) if sims else None,
                "copy_share_nl2_lt_1.4": _share([v < NL2_COPY_THRESHOLD for v in nl2s]),
                "share_nl2_lt_1.0": _share([v < STRICT_NL2 for v in nl2s]),
                "own_nn_rate": _share(owns),
                "own_n": len(owns),
                "mean_seconds": _mean(seconds),
            }
        )
    return table


def _cell(value: object, digits: int = 3) -> str:
    """A table cell: floats rounded, None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def to_markdown(table: list[dict]) -> str:
    """The summary as a Markdown table with a legend."""
    header = ["model", "prompt set", "method", "n", "p95 σ", "max σ", "nL2 < 1.4", "nL2 < 1.0", "own NN", "s/image"]
    keys = ["model", "prompt_set", "method", "n", "p95_similarity", "max_similarity", "copy_share_nl2_lt_1.4",
            "share_nl2_lt_1.0", "own_nn_rate", "mean_seconds"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        cells = [_cell(row[key], 2 if key == "mean_seconds" else 3) for key in keys]
        lines.append("| " + " | ".join(cells) + " |")
    legend = (
        "σ = 1 − nL2/2 of the final image to its nearest training image (pixel index); nL2 < 1.4 is the AMG paper's "
        "CIFAR-10 copy rule, nL2 < 1.0 a stricter one; own NN = share whose nearest training image is the prompt's "
        "own EmojiMem image (prompts that are EmojiMem captions); s/image = wall time of the Generation that made "
        "the sample (baseline and mitigated batched together). Generated from samples.jsonl by "
        "`python -m memdemo evaluate --summarize-only --out FOLDER`."
    )
    return "\n".join(["# Evaluation results", "", *lines, "", legend, ""])


def write_summary(out: Path) -> list[dict]:
    """Write OUT/results.md and OUT/results.csv from OUT/samples.jsonl; returns the summary rows."""
    rows = read_rows(out / SAMPLES_FILE)
    if not rows:
        raise EvaluationError(f"{out / SAMPLES_FILE} holds no samples; run `python -m memdemo evaluate` first")
    table = summarize(rows)
    (out / "results.md").write_text(to_markdown(table), encoding="utf-8")
    with (out / "results.csv").open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in table)
    return table


def published_results(models: tuple[str, ...]) -> dict[str, str]:
    """benchmarks/MODEL/results.md of each model that has been evaluated, by model name."""
    files = {name: BENCHMARKS / name / "results.md" for name in models}
    return {name: path.read_text(encoding="utf-8").strip() for name, path in files.items() if path.is_file()}
