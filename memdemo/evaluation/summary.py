"""Summary of samples.jsonl per (model, prompt set, method) in the AMG paper's form (docs/decisions.md §6):
object-level similarity tail and copy shares (copydet), pixel-level nL2 tail and copy shares, own-NN rates, the
Fréchet distance to the training set in copydet space, speed; and the detection ROC when both prompt sets exist."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from memdemo.evaluation.detection import detection_markdown, detection_table, plot_roc
from memdemo.evaluation.methods import EvaluationError
from memdemo.evaluation.quality import speckle
from memdemo.evaluation.runner import SAMPLES_FILE, read_rows, row_key
from memdemo.evaluation.scoring import LOOSE_THRESHOLD, CopydetScorer, pixel_scores, read_images
from memdemo.paths import benchmarks_dir
from memdemo.reference.index import ReferenceIndex
from memdemo.reference.metrics import NL2_COPY_THRESHOLD, NL2_STRICT_THRESHOLD, pixel_similarity

BENCHMARKS = benchmarks_dir()
GROUP = ("model", "prompt_set", "method")
# (key, Markdown header, digits)
COLUMNS = (
    ("model", "model", 0),
    ("prompt_set", "prompt set", 0),
    ("method", "method", 0),
    ("n", "n", 0),
    ("mean_steps_guided", "steps guided", 1),
    ("share_transition_fallback", "DTP fell back", 3),
    ("copydet_p95", "copydet top 5%", 3),
    ("copydet_max", "copydet top 1", 3),
    ("copy_share_copydet", "copies (copydet > τ)", 3),
    ("share_copydet_gt_0.5", "copydet > 0.5", 3),
    ("own_nn_copydet", "own NN (copydet)", 3),
    ("copy_share_other", "copies of another emoji", 3),
    ("nl2_p5", "nL2 top 5%", 3),
    ("nl2_min", "nL2 top 1", 3),
    ("copy_share_nl2_lt_1.4", "copies (nL2 < 1.4)", 3),
    ("share_nl2_lt_1.6", "nL2 < 1.6", 3),
    ("own_nn_pixel", "own NN (pixel)", 3),
    ("frechet_copydet", "FD (copydet)", 3),
    ("speckle_median", "speckle", 4),
    ("mean_seconds", "s/image", 2),
)
# What a reader needs first: how often the method acted, copies and own-NN at both levels, the quality proxy.
KEY_COLUMNS = ("prompt_set", "method", "n", "mean_steps_guided", "copy_share_copydet", "share_copydet_gt_0.5",
               "own_nn_copydet", "copy_share_other", "copy_share_nl2_lt_1.4", "own_nn_pixel", "frechet_copydet",
               "speckle_median")  # fmt: skip


def _share(flags: list[bool]) -> float | None:
    """Fraction of True, None for no values."""
    return sum(flags) / len(flags) if flags else None


def _values(members: list[dict], key: str) -> list:
    return [r[key] for r in members if r.get(key) is not None]


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def load_samples(folders: list[Path]) -> list[dict]:
    """Rows of each folder's samples.jsonl, with `image_path` resolved against the folder; a sample that two folders
    hold (the same key, e.g. the baseline both evaluations drew for one prompt and seed) counts once."""
    rows: dict[tuple, dict] = {}
    for folder in folders:
        for row in read_rows(folder / SAMPLES_FILE):
            image = row.get("image")
            rows.setdefault(row_key(row), {**row, "image_path": folder / image if image else None})
    return list(rows.values())


def score_images(
    rows: list[dict], scorer: CopydetScorer | None, pixel_index: ReferenceIndex | None
) -> dict[tuple, float]:
    """Score each row's saved image: copydet_similarity and copydet_own with the scorer; nl2, own and
    pixel_similarity with the pixel index when the image has its size (so pixel columns do not depend on the index
    guidance used). Returns the copydet Fréchet distance per group."""
    scored = [row for row in rows if row.get("image_path") and Path(row["image_path"]).is_file()]
    if not scored:
        return {}
    images = read_images([row["image_path"] for row in scored])
    for row, value in zip(scored, speckle(images), strict=True):
        row["speckle"] = float(value)
    if pixel_index is not None and images.shape[1] == pixel_index.image_size:
        nl2s, nearest = pixel_scores(images, pixel_index)
        for row, nl2, nearest_id in zip(scored, nl2s, nearest, strict=True):
            row["nl2"], row["pixel_similarity"] = float(nl2), float(pixel_similarity(nl2))
            row["own"] = None if row.get("own_id") is None else int(nearest_id) == row["own_id"]
    else:  # what the guidance index recorded is not a pixel score
        for row in scored:
            row["nl2"] = row["pixel_similarity"] = row["own"] = None
    if scorer is None:
        return {}
    scores = scorer.score(images)
    groups: dict[tuple, list[int]] = {}
    for position, row in enumerate(scored):
        row["copydet_similarity"] = float(scores.similarity[position])
        own_id = row.get("own_id")
        row["copydet_own"] = None if own_id is None else int(scores.nearest_id[position]) == own_id
        groups.setdefault(tuple(row[key] for key in GROUP), []).append(position)
    return {
        group: scorer.frechet_to_training(scores.embeddings[positions])
        for group, positions in groups.items()
        if len(positions) > 1
    }


def summarize(
    rows: list[dict], frechet: dict[tuple, float] | None = None, threshold: float | None = None
) -> list[dict]:
    """One summary row per (model, prompt set, method), in first-seen order; `threshold` is copydet's copy τ."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in GROUP), []).append(row)
    table = []
    for group, members in groups.items():
        objects = _values(members, "copydet_similarity")
        nl2s = _values(members, "nl2")
        seconds = _values(members, "seconds")
        table.append(
            {
                **dict(zip(GROUP, group, strict=True)),
                "n": len(members),
                "mean_steps_guided": sum(len(m["fired_steps"]) for m in members) / len(members),
                "share_transition_fallback": _fallback_share(members),
                "copydet_p95": _percentile(objects, 95),
                "copydet_max": max(objects, default=None),
                "copy_share_copydet": None if threshold is None else _share([v > threshold for v in objects]),
                "share_copydet_gt_0.5": _share([v > LOOSE_THRESHOLD for v in objects]),
                "own_nn_copydet": _share([bool(v) for v in _values(members, "copydet_own")]),
                "copy_share_other": _other_copy_share(members, threshold),
                "nl2_p5": _percentile(nl2s, 5),
                "nl2_min": min(nl2s, default=None),
                "copy_share_nl2_lt_1.4": _share([v < NL2_COPY_THRESHOLD for v in nl2s]),
                "share_nl2_lt_1.6": _share([v < NL2_STRICT_THRESHOLD for v in nl2s]),
                "own_nn_pixel": _share([bool(v) for v in _values(members, "own")]),
                "frechet_copydet": (frechet or {}).get(group),
                "speckle_median": _percentile(_values(members, "speckle"), 50),
                "mean_seconds": sum(seconds) / len(seconds) if seconds else None,
            }
        )
    return table


def _other_copy_share(members: list[dict], threshold: float | None) -> float | None:
    """Share of a training caption's samples that copy a different training emoji: copydet above τ, nearest not the
    caption's own image (a mitigation can swap one memorized image for another)."""
    judged = [m for m in members if m.get("copydet_own") is not None and m.get("copydet_similarity") is not None]
    if threshold is None or not judged:
        return None
    return _share([m["copydet_similarity"] > threshold and not m["copydet_own"] for m in judged])


def _fallback_share(members: list[dict]) -> float | None:
    """Share of transition-point samples whose dynamic rule found no minimum and switched at the static t (rows
    written before this field existed, and methods without a transition, give None)."""
    switched = [m for m in members if m.get("transition_step") is not None]
    return _share([bool(m.get("transition_fallback")) for m in switched]) if switched else None


def _cell(value: object, digits: int) -> str:
    """A table cell: floats rounded, None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table_markdown(table: list[dict], columns: tuple[str, ...] | None = None) -> list[str]:
    """The summary (or some of its columns) as Markdown table lines."""
    chosen = [c for c in COLUMNS if columns is None or c[0] in columns]
    lines = ["| " + " | ".join(header for _, header, _ in chosen) + " |", "|" + "---|" * len(chosen)]
    for row in table:
        lines.append("| " + " | ".join(_cell(row.get(key), digits) for key, _, digits in chosen) + " |")
    return lines


def legend(threshold: float | None) -> str:
    tau = "not available (no copydet index)" if threshold is None else f"{threshold:.3f}"
    return (
        "Steps guided = mean number of steps at which the method departed from plain CFG (AMG: its gate was open; "
        "transition point: the steps before the switch). DTP fell back = share of transition-point samples whose "
        "dynamic rule found no local minimum of ‖ε_c − ε_u‖ and switched at the static t instead. Object level: "
        "copydet cosine of the final image to its "
        "nearest training emoji (the scoring descriptor, not the one AMG's G_sim follows), top 5% = 95th percentile, "
        f"top 1 = maximum; copies = cosine above the calibrated τ = {tau} (90% precision), and above 0.5 (the SSCD "
        "convention). Pixel level: nL2 (AMG Eq. 8) to the nearest training image, top 5% = 5th percentile, top 1 = "
        "minimum; nL2 < 1.4 is the paper's CIFAR-10 copy rule, < 1.6 its looser column. Own NN = share whose nearest "
        "training image is the prompt's own emoji. Copies of another emoji = share above τ whose nearest training "
        "emoji is not the prompt's own (a clean emoji, but another memorized one). FD = Fréchet distance of the "
        "group's copydet embeddings to the unique training emoji (a quality proxy; biased upward for small n, "
        "compare equal n). Speckle = median of mean |x − median3×3(x)| on the 0–1 scale, isolated-pixel noise (a "
        "clean emoji is near 0). s/image = wall time of the Generation that made the sample (baseline and mitigated "
        "batched together)."
    )


def write_summary(
    out: Path,
    sources: list[Path] | None = None,
    scorer: CopydetScorer | None = None,
    pixel_index: ReferenceIndex | None = None,
) -> list[dict]:
    """Write OUT/results.md and .csv (and the detection ROC) from the samples in `sources` (default: OUT)."""
    rows = load_samples(sources or [out])
    if not rows:
        folders = ", ".join(str(folder / SAMPLES_FILE) for folder in sources or [out])
        raise EvaluationError(f"{folders} holds no samples; run `python -m memdemo evaluate` first")
    frechet = score_images(rows, scorer, pixel_index)
    table = summarize(rows, frechet, scorer.threshold if scorer else None)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Evaluation results", "", *table_markdown(table), "", legend(scorer.threshold if scorer else None)]
    detection = detection_table(rows)
    if detection:
        plot_roc(detection, out / "detection_roc.png")
        lines += ["", "## Detection", "", "Baseline samples, duplicated prompts (positives) vs holdout (negatives):"]
        lines += ["", *detection_markdown(detection), "", "![ROC](detection_roc.png)"]
    command = "python -m memdemo evaluate --summarize-only --out FOLDER [--from FOLDER ...]"
    (out / "results.md").write_text("\n".join([*lines, "", f"Generated by `{command}`.", ""]), encoding="utf-8")
    with (out / "results.csv").open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[key for key, _, _ in COLUMNS])
        writer.writeheader()
        writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in table)
    return table


def read_summary(path: Path) -> list[dict]:
    """A results.csv back as summary rows (numbers as numbers, empty cells as None)."""
    text_columns = {"model", "prompt_set", "method"}
    with path.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    return [
        {key: value if key in text_columns else (None if value == "" else float(value)) for key, value in row.items()}
        for row in rows
    ]


# The Models tab's plain names for the key columns, with a one-line legend each.
PLAIN_COLUMNS = {
    "prompt_set": ("captions", "duplicated ×32 in training, or never trained (holdout)"),
    "method": ("method", "plain guidance (baseline) or a mitigation"),
    "n": ("images", "how many images the row measures"),
    "copy_share_copydet": ("copies", "share the copy detector calls a copy (above its calibrated τ)"),
    "own_nn_copydet": ("own image nearest", "share whose nearest training image is the caption's own (detector)"),
    "own_nn_pixel": ("own image nearest (pixels)", "the same in pixel space"),
    "frechet_copydet": (
        "distance to training set",
        "Fréchet distance in detector space: lower is more like the training emoji",
    ),
}


def published_rows(models: tuple[str, ...]) -> dict[str, list[dict]]:
    """The summary rows of benchmarks/MODEL/results.csv of each model that has been evaluated."""
    files = {name: BENCHMARKS / name / "results.csv" for name in models}
    return {name: read_summary(path) for name, path in files.items() if path.is_file()}


def plain_table(rows: list[dict]) -> list[str]:
    """The key results with plain column names (the legend is `plain_legend`)."""
    lines = ["| " + " | ".join(name for name, _ in PLAIN_COLUMNS.values()) + " |", "|" + "---|" * len(PLAIN_COLUMNS)]
    for row in rows:
        cells = [_cell(row.get(key), 0 if key == "n" else 2) for key in PLAIN_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plain_legend() -> str:
    return " ".join(f"**{name}**: {about}." for name, about in PLAIN_COLUMNS.values())


def takeaway(rows: dict[str, list[dict]]) -> str:
    """One sentence per model from its measured rows: copies with plain guidance and with AMG on duplicated captions."""
    sentences = []
    for model, table in rows.items():
        by_method = {row["method"]: row for row in table if row["prompt_set"] == "duplicated"}
        base, amg = by_method.get("baseline"), by_method.get("amg-main")
        if base is None or base.get("copy_share_copydet") is None:
            continue
        text = f"{model}: the detector calls {base['copy_share_copydet']:.0%} of duplicated-caption images copies"
        if amg is not None and amg.get("copy_share_copydet") is not None:
            text += f", {amg['copy_share_copydet']:.0%} with AMG main"
        sentences.append(text + ".")
    return " ".join(sentences)
