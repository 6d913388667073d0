"""EmojiMem's model card and the README's Results section, generated from the shipped weights and the evaluations.

Run: python -m benchmarks.model_card → assets/emojimem-samples.png, assets/MODEL_CARD.md, README.md (Results block)
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from memdemo.backends import load_backend
from memdemo.bench import median_sample_seconds
from memdemo.data.emojimem import DEFAULT_DIR, EmojiMem
from memdemo.evaluation.prompts import load_prompts
from memdemo.evaluation.quality import speckle
from memdemo.evaluation.scoring import read_images
from memdemo.evaluation.summary import KEY_COLUMNS, load_samples, read_summary, table_markdown
from memdemo.guidance import build_policy
from memdemo.reference.copydet import DESCRIPTORS
from memdemo.sampling import Generation, Request

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODELS = ("emojimem-ddpm", "emojimem-ambient")
SAMPLE_MODELS = ("emojimem-v2-ddpm", *MODELS)
RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"


MAIN, MODELS_TABLE = HERE / "emojimem-ddpm", HERE / "models"
SPEEDS = {"emojimem-v2-ddpm": HERE / "speed-cpu-v2.md", "emojimem-ddpm": HERE / "speed-cpu.md"}  # `bench --model`
V2_TABLE, V2_SHEET = HERE / "emojimem-v2", HERE / "method_sheet.md"
SWEEP, SWEEP_V2 = HERE / "ambient_sweep.md", HERE / "ambient_sweep-v2.md"


def _table(folder: Path, columns: tuple[str, ...], methods: tuple[str, ...] | None = None) -> str:
    rows = read_summary(folder / "results.csv")
    rows = [row for row in rows if methods is None or row["method"] in methods]
    return "\n".join(table_markdown(rows, columns))


def _section(path: Path, heading: str) -> str:
    """The table lines of a Markdown file after `heading`."""
    lines = path.read_text(encoding="utf-8").split(heading, 1)[1].strip().splitlines()
    return "\n".join(line for line in lines if line.startswith("|"))


def results_markdown() -> str:
    """The README's Results: v2's methods table and method sheet, v2's detection, then v1's DDPM vs Ambient and
    t_n sweep, and speed, all read from benchmarks/."""
    if not (V2_TABLE / "results.csv").is_file():
        return "No evaluation yet: run the commands in assets/MODEL_CARD.md."
    parts = [
        "**What each method does to memorization on EmojiMem v2** (`benchmarks/emojimem-v2/results.md`, all columns "
        "there; the legend is in the model card):",
        _table(V2_TABLE, KEY_COLUMNS),
    ]
    if V2_SHEET.is_file():
        parts += [
            "**By eye** (`benchmarks/method_sheet.md`: the evaluation's own seed-0 images of the first 20 duplicated "
            "captions; a red frame is the scorer's copy verdict):",
            _section(V2_SHEET, "# Mitigations by eye"),
            "![methods](benchmarks/method_sheet.png)",
        ]
    if "## Detection" in (V2_TABLE / "results.md").read_text(encoding="utf-8"):
        parts += [
            "**Detection on v2** (baseline samples, duplicated captions vs holdout; "
            "`benchmarks/emojimem-v2/results.md`):",
            _section(V2_TABLE / "results.md", "## Detection"),
        ]
    if (MODELS_TABLE / "results.csv").is_file():
        parts += ["**EmojiMem v1: DDPM vs Ambient, plain CFG** (`benchmarks/models/results.md`):"]
        parts += [_table(MODELS_TABLE, ("model", *KEY_COLUMNS), ("baseline",))]
    for version, sweep in (("v2", SWEEP_V2), ("v1", SWEEP)):
        if sweep.is_file():
            where = sweep.relative_to(REPO)
            parts += [f"**EmojiMem {version}: Ambient t_n sweep** (`{where}`; t_n = 0 is the DDPM model):"]
            parts += [_section(sweep, "# Ambient"), f"![sweep]({where.with_suffix('.png')})"]
    for model, speed in SPEEDS.items():
        if speed.is_file():
            command = f"python -m memdemo bench --model {model}"
            parts += [f"**Speed, `{model}`** (`{speed.relative_to(REPO)}`, `{command}`):", _section(speed, "# Speed")]
    return "\n\n".join(parts)


COPY_LEVELS = ("copy_share_copydet", "copy_share_nl2_lt_1.4")


def _target_row(label: str, measured: dict, met: list[bool]) -> str:
    shares = " | ".join(f"{measured[key]:.3f}" for key in COPY_LEVELS)
    return f"| {label} | {shares} | {' / '.join('yes' if ok else 'no' for ok in met)} |"


def targets_markdown(seconds: float) -> str:
    """The training issue's targets against the DDPM-vs-Ambient table (duplicated prompts) and the CPU time."""
    if not (MODELS_TABLE / "results.csv").is_file():
        return "No evaluation yet."
    rows = {(r["model"], r["method"]): r for r in read_summary(MODELS_TABLE / "results.csv")
            if r["prompt_set"] == "duplicated"}  # fmt: skip
    ddpm, amg, ambient = rows[MODELS[0], "baseline"], rows[MODELS[0], "amg-main"], rows[MODELS[1], "baseline"]
    return "\n".join([
        "| target | copies (copydet > τ) | copies (nL2 < 1.4) | met (object / pixel) |",
        "|---|---|---|---|",
        _target_row("EmojiMem-DDPM, plain CFG: ≥ 50% copies", ddpm, [ddpm[k] >= 0.5 for k in COPY_LEVELS]),
        _target_row("EmojiMem-DDPM, AMG main: 0% copies", amg, [amg[k] == 0 for k in COPY_LEVELS]),
        _target_row("EmojiMem-Ambient, plain CFG: fewer copies than DDPM", ambient,
                    [ambient[k] < ddpm[k] for k in COPY_LEVELS]),
        f"| one 50-step CFG sample on this CPU ≤ 2.0 s | {seconds:.2f} s | | {'yes' if seconds <= 2 else 'no'} |",
    ])  # fmt: skip


def replace_block(text: str, block: str) -> str:
    """`text` with the part between the results markers replaced by `block`."""
    pattern = re.compile(re.escape(RESULTS_START) + ".*?" + re.escape(RESULTS_END), re.S)
    return pattern.sub(lambda _: f"{RESULTS_START}\n{block}\n{RESULTS_END}", text)


def sample_sheet(dataset: EmojiMem, prompts: list[tuple[str, int]], seed: int, path: Path) -> None:
    """Rows: v2 DDPM, v1 DDPM and v1 Ambient samples, the prompts' training images (blank for holdout); CFG 7.5,
    50 DDIM steps."""
    rows = []
    for name in SAMPLE_MODELS:
        backend = load_backend(name, "cpu")
        images = []
        for caption, _ in prompts:
            generation = Generation(backend, Request(caption, seed), build_policy("baseline", {}, 7.5, None))
            generation.run()
            images.append(generation.images["baseline"])
        rows.append(np.concatenate(images, 1))
    blank = np.full_like(dataset.images[0], 255)
    rows.append(np.concatenate([dataset.images[i] if i >= 0 else blank for _, i in prompts], 1))
    sheet = np.concatenate(rows, 0)
    Image.fromarray(sheet).resize((sheet.shape[1] * 3, sheet.shape[0] * 3), Image.NEAREST).save(path)


SHEET_METHODS = ("baseline", "amg-main", "amg-strong", "amg-sim", "amg-no-sim", "stp", "dtp", "og-dtp")


def method_sheet(dataset: EmojiMem, path: Path, prompts: int = 20) -> list[str]:
    """Rows: each method's saved evaluation image (seed 0, the first duplicated prompts), AMG on the pixel index,
    then the training images; returns the row labels. Made from benchmarks/, no new sampling."""
    folders = {"": MAIN, "pixel ": HERE / "emojimem-ddpm-pixel-amg"}
    images: dict[tuple[str, str], np.ndarray] = {}
    for prefix, folder in folders.items():
        for row in load_samples([folder]):
            if row["seed"] == 0 and row["prompt_set"] == "duplicated" and row.get("image_path"):
                images[prefix + row["method"], row["prompt"]] = read_images([row["image_path"]])[0]
    chosen = load_prompts("duplicated", prompts)
    labels = [*SHEET_METHODS, "pixel amg-main"]
    blank = np.full_like(dataset.images[0], 255)
    rows = [np.concatenate([images.get((label, p.text), blank) for p in chosen], 1) for label in labels]
    rows.append(np.concatenate([dataset.images[p.own_id] for p in chosen], 1))
    sheet = np.concatenate(rows, 0)
    Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(path)
    return [*labels, "training image"]


def cpu_seconds(repeats: int) -> float:
    """Median wall time of one 50-step CFG sample (batch 2 per step) with the shipped DDPM model."""
    return median_sample_seconds(load_backend("emojimem-ddpm", "cpu"), Request("warning", steps=50), repeats)


def training_rows() -> str:
    """One table row per model from its config.json card and train_log.jsonl."""
    lines = ["| model | objective | t_n (σ_VE) | steps | batch | lr | EMA | device | wall time | final loss |"]
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for name in MODELS:
        card = json.loads((REPO / "assets" / name / "config.json").read_text(encoding="utf-8"))["card"]
        log = (REPO / "assets" / name / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
        losses = [json.loads(line)["loss"] for line in log[-10:]]
        hp = card["hyperparameters"]
        nature = "–" if card["t_nature"] is None else f"{card['t_nature']} ({card['sigma_ve_nature']:.2f})"
        lines.append(
            f"| {name} | {card['objective']} | {nature} | {card['steps_done']:,} | {hp['batch_size']} | {hp['lr']:g} "
            f"| {hp['ema_decay']} | {card['device']} | {card['train_seconds'] / 60:.0f} min "
            f"| {statistics.mean(losses):.3f} (mean of the last 10 logged) |"
        )
    return "\n".join(lines)


def copydet_rows() -> str:
    """One table row per descriptor from its config.json card, train_log.jsonl and calibration.json."""
    header = ("descriptor", "steps", "batch", "device", "wall time", "final loss", "τ (≥ 90% precision, ≤ 5% flagged)",
              "copies detected at τ", "distinct flagged at τ", "detected under attack (L∞ 0.03)",
              "at 0.5: detected / flagged")  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for folder in DESCRIPTORS.values():
        path = REPO / "assets" / folder
        card = json.loads((path / "config.json").read_text(encoding="utf-8"))["card"]
        calibration = json.loads((path / "calibration.json").read_text(encoding="utf-8"))
        log = (path / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
        loss = statistics.mean(json.loads(line)["loss"] for line in log[-5:])
        loose = calibration["at_0.5"]
        lines.append(
            f"| `{folder}` | {card['steps_done']:,} | {card['hyperparameters']['batch_size']} | {card['device']} "
            f"| {card['train_seconds'] / 60:.0f} min | {loss:.3f} | {calibration['threshold']:.3f} "
            f"| {calibration['copies_detected']:.2f} | {calibration['distinct_flagged']:.3f} "
            f"| {calibration['copies_detected_under_attack']:.2f} "
            f"| {loose['copies_detected']:.2f} / {loose['distinct_flagged']:.2f} |"
        )
    return "\n".join(lines)


def evaluation_markdown() -> str:
    """The DDPM-vs-Ambient results (every row of both models) and the pixel-level AMG run, headed by their folder."""
    folders = ("models", "emojimem-ddpm-pixel-amg")
    parts = []
    for name in folders:
        path = HERE / name / "results.md"
        if path.is_file():
            text = path.read_text(encoding="utf-8").replace("# Evaluation results", "").strip()
            text = text.replace("![ROC](detection_roc.png)", f"![ROC](../benchmarks/{name}/detection_roc.png)")
            parts.append(f"### `benchmarks/{name}/`\n\n{text}")
    return "\n\n".join(parts) or "No evaluation yet: run the commands above."


def v2_evaluation_markdown() -> str:
    """benchmarks/emojimem-v2/results.md (every row, legend and detection) without its title."""
    path = V2_TABLE / "results.md"
    if not path.is_file():
        return "No evaluation yet: run the commands above."
    text = path.read_text(encoding="utf-8").replace("# Evaluation results", "").strip()
    return text.replace("![ROC](detection_roc.png)", "![ROC](../benchmarks/emojimem-v2/detection_roc.png)")


def v2_reading(dataset: EmojiMem) -> str:
    """One generated line per method on v2's duplicated captions: copies by the scorer, own-NN in pixels and
    speckle against the training emoji's, read from benchmarks/emojimem-v2/results.csv."""
    if not (V2_TABLE / "results.csv").is_file():
        return ""
    reference = float(np.median(speckle(dataset.images[dataset.ids("train")])))
    lines = [f"Reading the table (duplicated captions; the training emoji's median speckle is {reference:.4f}):", ""]
    for row in read_summary(V2_TABLE / "results.csv"):
        if row["prompt_set"] != "duplicated" or row.get("copy_share_copydet") is None:
            continue
        noise = row.get("speckle_median")
        clean = "" if noise is None else f", speckle {noise / reference:.2f}× the training emoji's"
        other = row.get("copy_share_other")
        swapped = "" if other is None else f" ({other:.0%} of all samples are copies of another training emoji)"
        lines.append(
            f"* {row['method']} (n = {row['n']:.0f}): the scorer calls {row['copy_share_copydet']:.0%} copies"
            f"{swapped}; {row['own_nn_pixel']:.0%} are nearest to their own training image in pixels{clean}."
        )
    return "\n".join(lines)


def sweep_markdown(sweep: Path) -> str:
    """A benchmarks/ambient_sweep*.md report without its title, or how to make it."""
    if not sweep.is_file():
        return "Not run yet: `python -m benchmarks.ambient_sweep MODEL_FOLDER ...` after evaluating each model."
    text = sweep.read_text(encoding="utf-8").split("\n", 1)[1].strip()
    plot = sweep.with_suffix(".png").name
    return text.replace(f"]({plot})", f"](../benchmarks/{plot})")


V2_RUNS = {"DDPM": "emojimem-v2-ddpm", "Ambient": "emojimem-v2-ambient"}


def _resume_text(resume: dict) -> str:
    """ "step 9484 (2026-12-02T03:51; caption_dropout 0.1 → 0.2)": where a run resumed, when, and what changed."""
    changes = [change.replace(": checkpoint ", " ").replace(", asked ", " → ") for change in resume.get("changed", [])]
    return f"step {resume['step']} ({'; '.join([resume['at'][:16], *changes])})"


def v2_markdown() -> str:
    """EmojiMem v2: the recipe study, each run's CPU hours and resumes (from its checkpoint card), and the targets."""
    parts = [
        "A tiny latent diffusion model: the EmojiMem autoencoder (f = 2, 4×16×16 latents, `training/emojimem-vae`) "
        "and the v1 UNet on its latents, trained with v-prediction and min-SNR-5 (docs/training.md). The recipe was "
        "chosen by a study at equal CPU time ([benchmarks/recipe_study.md](../benchmarks/recipe_study.md)):",
        _section(HERE / "recipe_study.md", "# EmojiMem v2 recipe study"),
        "![recipe study](../benchmarks/recipe_study.png)",
        "**Training, across sessions** (each run resumes from `training/NAME/checkpoint/`; CPU time is process time, "
        "all threads):",
        "| run | objective | steps done | samples | CPU hours | wall hours | resumes |\n|---|---|---|---|---|---|---|",
    ]
    for objective, name in V2_RUNS.items():
        config = REPO / "training" / name / "config.json"
        if not config.is_file():
            continue
        card = json.loads(config.read_text(encoding="utf-8"))["card"]
        resumes = ", ".join(_resume_text(r) for r in card["resumes"]) or "none"
        nature = f" (t_n = {card['t_nature']})" if card.get("t_nature") is not None else ""
        samples = card["steps_done"] * card["hyperparameters"]["batch_size"]
        parts[-1] += (
            f"\n| `{name}` | {objective}{nature} | {card['steps_done']:,} of {card['hyperparameters']['steps']:,} "
            f"| {samples:,} | {card['cpu_seconds'] / 3600:.2f} | {card['train_seconds'] / 3600:.2f} | {resumes} |"
        )
    shipped = REPO / "assets" / "emojimem-v2-ddpm" / "config.json"
    if shipped.is_file():
        steps = json.loads(shipped.read_text(encoding="utf-8"))["card"]["steps_done"]
        parts.append(
            f"The demo ships the DDPM run's snapshot at step {steps:,} (`assets/emojimem-v2-ddpm`): the targets, "
            "examples, method sheet and screenshots were measured on it."
        )
    final = HERE / "v2-training-final"
    if (final / "method_sheet.md").is_file() and V2_SHEET.is_file():
        parts += [
            "The finished run, at the same 20 duplicated captions and seed 0 "
            "([benchmarks/v2-training-final/](../benchmarks/v2-training-final/method_sheet.md)), copies harder, "
            "and its transition methods and OG+DTP leave more copies (AMG as many) than on the shipped snapshot, so "
            "the demo keeps the snapshot:",
            _section(final / "method_sheet.md", "Training emoji speckle"),
            f"The shipped snapshot ([{V2_SHEET.name}](../benchmarks/{V2_SHEET.name})):",
            _section(V2_SHEET, "Training emoji speckle"),
        ]
    autoencoder = REPO / "training" / "emojimem-vae" / "card.json"
    if autoencoder.is_file():
        ae = json.loads(autoencoder.read_text(encoding="utf-8"))
        parts.append(
            f"The autoencoder: {ae['steps_done']:,} steps, {ae['cpu_seconds'] / 3600:.2f} CPU hours; reconstruction "
            f"MAE (0–1) median {ae['mae_train_median']:.3f} and 90th percentile {ae['mae_train_p90']:.3f} on the "
            f"training emoji, median {ae['mae_holdout_median']:.3f} on the holdout."
        )
    targets = HERE / "targets.md"
    if targets.is_file():
        parts += ["**Targets** ([benchmarks/targets.md](../benchmarks/targets.md)):", _section(targets, "# EmojiMem")]
        parts.append(targets.read_text(encoding="utf-8").split("CPU:", 1)[1].strip().replace("\n\n", " "))
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    dataset = EmojiMem.load(DEFAULT_DIR)
    duplicated = [(prompt.text, prompt.own_id) for prompt in load_prompts("duplicated", 8)]
    holdout = [(prompt.text, -1) for prompt in load_prompts("holdout", 4)]
    sample_sheet(dataset, duplicated + holdout, args.seed, REPO / "assets" / "emojimem-samples.png")
    sheet_rows = method_sheet(dataset, REPO / "assets" / "emojimem-methods.png")
    seconds = cpu_seconds(args.repeats)
    results = results_markdown()
    template = (HERE / "model_card_template.md").read_text(encoding="utf-8")
    card = template.format(
        training=training_rows(),
        v2=v2_markdown(),
        v2_results=v2_evaluation_markdown(),
        v2_reading=v2_reading(dataset),
        copydet=copydet_rows(),
        sheet_rows=", ".join(sheet_rows),
        targets=targets_markdown(seconds),
        results=evaluation_markdown(),
        sweep=sweep_markdown(SWEEP),
        sweep_v2=sweep_markdown(SWEEP_V2),
        seconds=f"{seconds:.2f}",
        repeats=args.repeats,
        machine=f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        captions=", ".join(f"“{caption}”" for caption, _ in duplicated + holdout),
        seed=args.seed,
    )
    (REPO / "assets" / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    readme = REPO / "README.md"
    readme.write_text(replace_block(readme.read_text(encoding="utf-8"), results), encoding="utf-8")
    print(f"wrote assets/MODEL_CARD.md, assets/emojimem-samples.png, README Results; CPU sample {seconds:.2f} s")


if __name__ == "__main__":
    main()
