"""Memorization detection from the evaluation's samples (Wen et al. 2024): ROC of ‖ε_c − ε_u‖ (first step and mean
over steps) and of the final similarity, baseline samples of duplicated prompts (positives) vs holdout (negatives)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

POSITIVE_SET, NEGATIVE_SET = "duplicated", "holdout"
FPR_BUDGET = 0.01
SIGNALS = {
    "norm_first": "‖ε_c − ε_u‖ at the first step",
    "norm_mean": "‖ε_c − ε_u‖ averaged over steps",
    "pixel_similarity": "pixel σ = 1 − nL2/2 of the final image",
    "copydet_similarity": "copydet σ of the final image",
}


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


def _scores(rows: list[dict], model: str, prompt_set: str, key: str) -> np.ndarray:
    values = [r.get(key) for r in rows if (r["model"], r["prompt_set"], r["method"]) == (model, prompt_set, "baseline")]
    return np.array([v for v in values if v is not None], dtype=np.float64)


def detection_table(rows: list[dict]) -> list[dict]:
    """ROC AUC and TPR at 1% FPR per (model, signal), for models with baseline samples of both prompt sets."""
    table = []
    for model in dict.fromkeys(row["model"] for row in rows):
        for key, label in SIGNALS.items():
            positives, negatives = (_scores(rows, model, name, key) for name in (POSITIVE_SET, NEGATIVE_SET))
            if len(positives) and len(negatives):
                fpr, tpr = roc(positives, negatives)
                table.append(
                    {
                        "model": model,
                        "signal": key,
                        "label": label,
                        "positives": len(positives),
                        "negatives": len(negatives),
                        "auc": auc(positives, negatives),
                        "tpr_at_1pct_fpr": tpr_at(fpr, tpr, FPR_BUDGET),
                        "curve": (fpr, tpr),
                    }
                )
    return table


def detection_markdown(table: list[dict]) -> list[str]:
    """The detection table as Markdown lines."""
    lines = ["| model | signal | positives / negatives | ROC AUC | TPR at 1% FPR |", "|---|---|---|---|---|"]
    for row in table:
        counts = f"{row['positives']} / {row['negatives']}"
        lines.append(
            f"| {row['model']} | {row['label']} | {counts} | {row['auc']:.3f} | {row['tpr_at_1pct_fpr']:.2f} |"
        )
    return lines


def plot_roc(table: list[dict], path: Path) -> None:
    """One ROC panel per model, a curve per signal."""
    models = list(dict.fromkeys(row["model"] for row in table))
    figure = Figure(figsize=(4.2 * len(models), 4), layout="constrained")
    for position, model in enumerate(models, start=1):
        axes = figure.add_subplot(1, len(models), position)
        for row in (r for r in table if r["model"] == model):
            axes.plot(*row["curve"], label=f"{row['label']} (AUC {row['auc']:.2f})")
        axes.plot([0, 1], [0, 1], "k:", lw=0.8)
        axes.set(xlabel="false-positive rate (holdout)", ylabel="true-positive rate (duplicated)", title=model)
        axes.legend(fontsize=7, loc="lower right")
    figure.savefig(path, dpi=110)
