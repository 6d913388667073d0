"""Copy rate against quality as the Ambient noise level t_n grows (the Ambient paper's Fig. 1), on EmojiMem:
t_n = 0 is the DDPM model (Alg. 1 with t_n = 0 is the DDPM loss); each further point is a model that
`python -m memdemo train --objective ambient --t-nature T` wrote, evaluated like the shipped twins.

Run: python -m benchmarks.ambient_sweep assets/emojimem-ddpm assets/emojimem-ambient runs/emojimem-ambient-t600
     → benchmarks/ambient_sweep.md, ambient_sweep.png (reads benchmarks/<model folder name>/results.csv)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.figure import Figure

from memdemo.evaluation.summary import BENCHMARKS, read_summary

PROMPT_SET, METHOD = "duplicated", "baseline"


def noise_level(model_folder: Path) -> tuple[int, float]:
    """(t_n, σ_VE at t_n) from the training card in the model's config.json; a DDPM model is t_n = 0."""
    card = json.loads((model_folder / "config.json").read_text(encoding="utf-8"))["card"]
    if card["objective"] == "ddpm":
        return 0, 0.0
    return int(card["t_nature"]), float(card["sigma_ve_nature"])


def sweep_point(model_folder: Path) -> dict:
    """The model's t_n and its baseline row on duplicated prompts from benchmarks/<name>/results.csv."""
    results = BENCHMARKS / model_folder.name / "results.csv"
    if not results.is_file():
        raise SystemExit(f"no {results}; evaluate first: python -m memdemo evaluate --model {model_folder} "
                         f"--prompts {PROMPT_SET} --seeds 4 --methods {METHOD} --out {results.parent}")  # fmt: skip
    rows = [r for r in read_summary(results) if (r["prompt_set"], r["method"]) == (PROMPT_SET, METHOD)]
    if not rows or rows[0]["copy_share_copydet"] is None:
        raise SystemExit(f"{results} has no copydet-scored {METHOD} row on {PROMPT_SET} prompts; evaluate them first")
    t_nature, sigma = noise_level(model_folder)
    return {"model": model_folder.name, "t_n": t_nature, "sigma": sigma, **rows[0]}


def plot(points: list[dict], path: Path) -> None:
    """Copy shares (object and pixel level) against the Fréchet distance, one labelled marker per t_n."""
    figure = Figure(figsize=(6, 3.6), layout="constrained")
    axes = figure.add_subplot()
    fd = [p["frechet_copydet"] for p in points]
    for key, label, colour in (
        ("copy_share_copydet", "copies (copydet > τ)", "#d62728"),
        ("copy_share_nl2_lt_1.4", "copies (nL2 < 1.4)", "#1f77b4"),
    ):
        axes.plot(fd, [p[key] for p in points], "o-", color=colour, label=label)
    for p in points:
        axes.annotate(f"t_n = {p['t_n']}", (p["frechet_copydet"], p["copy_share_nl2_lt_1.4"]), fontsize=8,
                      textcoords="offset points", xytext=(4, 4))  # fmt: skip
    axes.set(xlabel="Fréchet distance in copydet space to the training emoji (lower = closer)",
             ylabel="share of samples", title="Ambient t_n: memorization vs quality (duplicated prompts)")  # fmt: skip
    axes.set_ylim(0, None)
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="model folders, each evaluated into benchmarks/<name>")
    folders = parser.parse_args().models
    points = sorted((sweep_point(folder) for folder in folders), key=lambda p: p["t_n"])
    lines = ["# Ambient t_n sweep on EmojiMem", ""]
    lines += [f"`python -m benchmarks.ambient_sweep {' '.join(map(str, folders))}`: the "
              f"{METHOD} rows of each model's evaluation on the {PROMPT_SET} prompts (CFG 7.5, 50 DDIM steps); "
              "every model trained with the same command and schedule except the objective and t_n.", ""]  # fmt: skip
    lines += ["| model | t_n | σ_VE at t_n | n | copies (copydet > τ) | copies (nL2 < 1.4) | own NN (copydet) |"
              " FD (copydet) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    shares = ("copy_share_copydet", "copy_share_nl2_lt_1.4", "own_nn_copydet", "frechet_copydet")
    for p in points:
        cells = [p["model"], str(p["t_n"]), f"{p['sigma']:.2f}", f"{p['n']:.0f}", *(f"{p[k]:.3f}" for k in shares)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "![sweep](ambient_sweep.png)", ""]
    plot(points, BENCHMARKS / "ambient_sweep.png")
    (BENCHMARKS / "ambient_sweep.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
