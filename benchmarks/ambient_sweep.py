"""Copy rate against quality as the Ambient noise level t_n grows (the Ambient paper's Fig. 1), on EmojiMem:
t_n = 0 is the DDPM model (Alg. 1 with t_n = 0 is the DDPM loss); each further point is a model that
`python -m memdemo train --objective ambient --t-nature T` wrote, evaluated like the shipped twins.

Run: python -m benchmarks.ambient_sweep assets/emojimem-ddpm assets/emojimem-ambient runs/emojimem-ambient-t600
     → benchmarks/ambient_sweep.md, ambient_sweep.png (reads benchmarks/<model folder name>/results.csv);
     --name N writes N.md and N.png instead. The Ambient paper's claim, the target each t_n is judged by: copies fall
     at least COPY_FALL× against the DDPM model (t_n = 0) at a Fréchet distance within FD_SLACK of its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.figure import Figure

from memdemo.evaluation.summary import BENCHMARKS, read_summary

PROMPT_SET, METHOD = "duplicated", "baseline"
COPY_FALL, FD_SLACK = 3.0, 0.10


def noise_level(model_folder: Path) -> tuple[int, float, int | None]:
    """(t_n, σ_VE at t_n, training steps done) from the training card in the model's config.json; a DDPM model is
    t_n = 0."""
    card = json.loads((model_folder / "config.json").read_text(encoding="utf-8"))["card"]
    steps = card.get("steps_done")
    if card["objective"] == "ddpm":
        return 0, 0.0, steps
    return int(card["t_nature"]), float(card["sigma_ve_nature"]), steps


def sweep_point(model_folder: Path) -> dict:
    """The model's t_n and its baseline row on duplicated prompts from benchmarks/<name>/results.csv."""
    results = BENCHMARKS / model_folder.name / "results.csv"
    if not results.is_file():
        raise SystemExit(f"no {results}; evaluate first: python -m memdemo evaluate --model {model_folder} "
                         f"--prompts {PROMPT_SET} --seeds 4 --methods {METHOD} --out {results.parent}")  # fmt: skip
    rows = [r for r in read_summary(results) if (r["prompt_set"], r["method"]) == (PROMPT_SET, METHOD)]
    if not rows or rows[0]["copy_share_copydet"] is None:
        raise SystemExit(f"{results} has no copydet-scored {METHOD} row on {PROMPT_SET} prompts; evaluate them first")
    t_nature, sigma, steps = noise_level(model_folder)
    return {"model": model_folder.name, "t_n": t_nature, "sigma": sigma, "steps": steps, **rows[0]}


def against_ddpm(point: dict, ddpm: dict) -> tuple[float, float, bool]:
    """(how many times fewer copies by copydet, FD ÷ the DDPM model's, whether the claim holds) for one t_n."""
    fall = ddpm["copy_share_copydet"] / point["copy_share_copydet"] if point["copy_share_copydet"] else float("inf")
    fd_ratio = point["frechet_copydet"] / ddpm["frechet_copydet"]
    return fall, fd_ratio, fall >= COPY_FALL and fd_ratio <= 1 + FD_SLACK


def plot(points: list[dict], path: Path) -> None:
    """Copy shares (object and pixel level) against the Fréchet distance, one labelled marker per t_n, with the
    target's region: FD within FD_SLACK of the DDPM model's, copies below its share ÷ COPY_FALL."""
    figure = Figure(figsize=(6, 3.6), layout="constrained")
    axes = figure.add_subplot()
    fd = [p["frechet_copydet"] for p in points]
    ddpm = points[0]
    fd_limit = ddpm["frechet_copydet"] * (1 + FD_SLACK)
    axes.axvspan(0, fd_limit, color="#2ca02c", alpha=0.08, label=f"FD within {FD_SLACK:.0%} of t_n = 0")
    axes.axhline(ddpm["copy_share_copydet"] / COPY_FALL, color="#d62728", linestyle=":",
                 label=f"copies (copydet) of t_n = 0 ÷ {COPY_FALL:.0f}")  # fmt: skip
    for key, label, colour in (
        ("copy_share_copydet", "copies (copydet > τ)", "#d62728"),
        ("copy_share_nl2_lt_1.4", "copies (nL2 < 1.4)", "#1f77b4"),
    ):
        axes.plot(fd, [p[key] for p in points], "o-", color=colour, label=label)
    for row, p in enumerate(points):  # labels stacked downwards: close FDs would print them over each other
        axes.annotate(f"t_n = {p['t_n']}", (p["frechet_copydet"], p["copy_share_copydet"]), fontsize=8,
                      textcoords="offset points", xytext=(4, -14 - 11 * row),
                      arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5})  # fmt: skip
    axes.set(xlabel="Fréchet distance in copydet space to the training emoji (lower = closer)",
             ylabel="share of samples", title="Ambient t_n: copies vs quality (duplicated prompts)")  # fmt: skip
    axes.set_xlim(min(*fd, ddpm["frechet_copydet"]) * 0.85, max(*fd, fd_limit) * 1.1)
    axes.set_ylim(0, 1.05)
    axes.legend(fontsize=7, loc="center right")
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="model folders, each evaluated into benchmarks/<name>")
    parser.add_argument("--name", default="ambient_sweep", help="report name: benchmarks/NAME.md and NAME.png")
    args = parser.parse_args()
    points = sorted((sweep_point(folder) for folder in args.models), key=lambda p: p["t_n"])
    if points[0]["t_n"] != 0:
        raise SystemExit("the sweep needs the DDPM model (t_n = 0) to compare the Ambient models with")
    name_option = "" if args.name == "ambient_sweep" else f" --name {args.name}"
    lines = ["# Ambient t_n sweep on EmojiMem", ""]
    lines += [f"`python -m benchmarks.ambient_sweep {' '.join(map(str, args.models))}{name_option}`: the "
              f"{METHOD} rows of each model's evaluation on the {PROMPT_SET} prompts (CFG 7.5, 50 DDIM steps); "
              "every model trained with the same command and schedule except the objective and t_n. Target (the "
              f"Ambient paper's claim): copies by copydet fall ≥ {COPY_FALL:.0f}× against t_n = 0 at a Fréchet "
              f"distance within {FD_SLACK:.0%} of its.", ""]  # fmt: skip
    lines += ["| model | steps | t_n | σ_VE at t_n | n | copies (copydet > τ) | copies (nL2 < 1.4) | own NN (copydet) |"
              " FD (copydet) | copies fall | FD ÷ DDPM's | target met |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    shares = ("copy_share_copydet", "copy_share_nl2_lt_1.4", "own_nn_copydet", "frechet_copydet")
    for p in points:
        steps = "–" if p["steps"] is None else f"{p['steps']:,}"
        cells = [p["model"], steps, str(p["t_n"]), f"{p['sigma']:.2f}", f"{p['n']:.0f}"]
        cells += [f"{p[k]:.3f}" for k in shares]
        if p["t_n"]:
            fall, fd_ratio, met = against_ddpm(p, points[0])
            cells += [f"{fall:.1f}×", f"{fd_ratio:.2f}", "yes" if met else "no"]
        else:
            cells += ["–", "–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"![sweep]({args.name}.png)", ""]
    plot(points, BENCHMARKS / f"{args.name}.png")
    (BENCHMARKS / f"{args.name}.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
