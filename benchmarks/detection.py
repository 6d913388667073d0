"""Memorization signals on EmojiMem-DDPM: ROC of ‖ε_c − ε_u‖ and σ for duplicated vs holdout prompts (Wen et al.'s
detection, from the evaluation's samples.jsonl) and d_t per step for both kinds (the attraction-basin paper's Fig. 2).

Run: python -m benchmarks.detection → benchmarks/detection.md, detection_roc.png, detection_dt.png
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from memdemo.backends import load_backend
from memdemo.evaluation.prompts import load_prompts
from memdemo.guidance import make_policy
from memdemo.guidance.transition import is_transition
from memdemo.sampling import Generation, Request

HERE = Path(__file__).resolve().parent
SAMPLES = HERE / "emojimem-ddpm" / "samples.jsonl"
SIGNALS = {
    "norm_first": "‖ε_c − ε_u‖ at the first step",
    "norm_mean": "‖ε_c − ε_u‖ averaged over steps",
    "similarity": "σ of the final image",
}
CURVE_PROMPTS = 8


def roc(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates over every threshold, highest score first."""
    thresholds = np.unique(np.concatenate([positives, negatives]))[::-1]
    fpr = np.array([0.0, *[(negatives >= t).mean() for t in thresholds]])
    tpr = np.array([0.0, *[(positives >= t).mean() for t in thresholds]])
    return fpr, tpr


def auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (the Mann–Whitney form of ROC AUC)."""
    greater = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    return float(greater + ties / 2)


def tpr_at(fpr: np.ndarray, tpr: np.ndarray, budget: float) -> float:
    """The highest TPR whose FPR stays within `budget`."""
    return float(tpr[fpr <= budget].max())


def dt_curves(prompts: list[str], seed: int) -> tuple[np.ndarray, list[int | None]]:
    """d_t = ‖ε_c − ε_u‖ per step of the CFG trajectory for each prompt, and the first local minimum (Alg. 1)."""
    backend = load_backend("emojimem-ddpm", "cpu")
    curves, minima = [], []
    for prompt in prompts:
        trace = Generation(backend, Request(prompt, seed), make_policy("baseline", 7.5)).run()
        curve = [step.cond_uncond_norm for step in trace.baseline.steps]
        curves.append(curve)
        minima.append(next((i - 2 for i in range(3, len(curve) + 1) if is_transition(curve[:i])), None))
    return np.array(curves), minima


def main() -> None:
    rows = [json.loads(line) for line in SAMPLES.read_text(encoding="utf-8").splitlines()]
    baseline = [row for row in rows if row["method"] == "baseline"]
    kinds = {kind: [row for row in baseline if row["prompt_set"] == kind] for kind in ("duplicated", "holdout")}
    lines = [
        "# Memorization signals on EmojiMem-DDPM",
        "",
        f"`python -m benchmarks.detection`. ROC: baseline samples of `{SAMPLES.relative_to(HERE.parent)}`, "
        f"{len(kinds['duplicated'])} duplicated-prompt samples (positives) vs {len(kinds['holdout'])} holdout-prompt "
        "samples (negatives); CFG 7.5, 50 DDIM steps.",
        "",
        "| signal | ROC AUC | TPR at 1% FPR |",
        "|---|---|---|",
    ]
    figure = Figure(figsize=(4.5, 4), layout="constrained")
    axes = figure.add_subplot()
    for key, label in SIGNALS.items():
        positives = np.array([row[key] for row in kinds["duplicated"]])
        negatives = np.array([row[key] for row in kinds["holdout"]])
        fpr, tpr = roc(positives, negatives)
        lines.append(f"| {label} | {auc(positives, negatives):.3f} | {tpr_at(fpr, tpr, 0.01):.2f} |")
        axes.plot(fpr, tpr, label=label)
    axes.plot([0, 1], [0, 1], "k:", lw=0.8)
    axes.set(xlabel="false-positive rate (holdout)", ylabel="true-positive rate (duplicated)", title="ROC")
    axes.legend(fontsize=7, loc="lower right")
    figure.savefig(HERE / "detection_roc.png", dpi=110)

    duplicated = [prompt.text for prompt in load_prompts("duplicated", CURVE_PROMPTS)]
    holdout = [prompt.text for prompt in load_prompts("holdout", CURVE_PROMPTS)]
    figure = Figure(figsize=(6, 3.6), layout="constrained")
    axes = figure.add_subplot()
    lines += ["", f"d_t along the CFG trajectory, seed 1, the first {CURVE_PROMPTS} prompts of each set:", ""]
    lines += ["| prompts | mean d_t at step 0 / 10 / 25 / 49 | first strict local minimum of d_t (Alg. 1) |"]
    lines += ["|---|---|---|"]
    for name, prompts, colour in (("duplicated", duplicated, "#d62728"), ("holdout", holdout, "#1f77b4")):
        curves, minima = dt_curves(prompts, seed=1)
        for curve in curves:
            axes.plot(curve, color=colour, alpha=0.35, lw=0.8)
        axes.plot(curves.mean(0), color=colour, lw=2, label=f"{name} (mean of {len(prompts)})")
        found = [m for m in minima if m is not None]
        means = " / ".join(f"{curves.mean(0)[i]:.2f}" for i in (0, 10, 25, curves.shape[1] - 1))
        where = f"{len(found)} of {len(prompts)}" + (f", at steps {sorted(found)}" if found else "")
        lines.append(f"| {name} | {means} | {where} |")
    axes.set(xlabel="denoising step", ylabel="‖ε_c − ε_u‖", title="d_t: memorized vs non-memorized prompts")
    axes.legend(fontsize=8, loc="upper left")
    figure.savefig(HERE / "detection_dt.png", dpi=110)
    lines += ["", "![ROC](detection_roc.png) ![d_t](detection_dt.png)", ""]
    (HERE / "detection.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
