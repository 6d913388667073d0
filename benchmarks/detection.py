"""d_t = ‖ε_c − ε_u‖ per step on EmojiMem-DDPM for memorized (duplicated) and non-memorized (holdout) prompts, and
where Alg. 1 finds its transition (the attraction-basin paper's Fig. 2). The detection ROC is part of
`python -m memdemo evaluate` (benchmarks/emojimem-ddpm/results.md).

Run: python -m benchmarks.detection → benchmarks/detection.md, detection_dt.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from memdemo.backends import load_backend
from memdemo.evaluation.prompts import load_prompts
from memdemo.guidance import build_policy
from memdemo.guidance.transition import is_transition
from memdemo.sampling import Generation, Request

HERE = Path(__file__).resolve().parent
CURVE_PROMPTS = 8


def dt_curves(prompts: list[str], seed: int) -> tuple[np.ndarray, list[int | None]]:
    """d_t = ‖ε_c − ε_u‖ per step of the CFG trajectory for each prompt, and the first local minimum (Alg. 1)."""
    backend = load_backend("emojimem-ddpm", "cpu")
    curves, minima = [], []
    for prompt in prompts:
        trace = Generation(backend, Request(prompt, seed), build_policy("baseline", {}, 7.5, None)).run()
        curve = [step.cond_uncond_norm for step in trace.baseline.steps]
        curves.append(curve)
        minima.append(next((i - 2 for i in range(3, len(curve) + 1) if is_transition(curve[:i])), None))
    return np.array(curves), minima


def main() -> None:
    lines = ["# d_t on EmojiMem-DDPM: memorized vs non-memorized prompts", ""]
    duplicated = [prompt.text for prompt in load_prompts("duplicated", CURVE_PROMPTS)]
    holdout = [prompt.text for prompt in load_prompts("holdout", CURVE_PROMPTS)]
    figure = Figure(figsize=(6, 3.6), layout="constrained")
    axes = figure.add_subplot()
    lines += [f"`python -m benchmarks.detection`: d_t along the CFG trajectory, seed 1, the first {CURVE_PROMPTS}"]
    lines += ["prompts of each set:", ""]
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
    lines += ["", "![d_t](detection_dt.png)", ""]
    (HERE / "detection.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
