"""EmojiMem v2 recipe study: candidates trained for the same CPU minutes, compared on exact copies and clean samples.

Each candidate is a folder that `python -m memdemo train` wrote with `--max-cpu-minutes`; the study samples every
duplicated caption and the first holdout captions at seed 0 over a few CFG scales, and measures:
- own-NN: the nearest training image in pixel space is the prompt's own;
- MAE: median per-pixel mean |x − own training image| (0–1 scale);
- speckle ratio: median mean |x − median3×3(x)| of holdout samples over that of the training emoji.

Run: python -m benchmarks.recipe_study NAME=FOLDER ... → benchmarks/recipe_study.md, benchmarks/recipe_study.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from memdemo.backends.emojimem import EmojiMemBackend
from memdemo.data.emojimem import EmojiMem
from memdemo.evaluation.prompts import load_prompts
from memdemo.evaluation.quality import measure_copies

HERE = Path(__file__).resolve().parent
CFG_SCALES = (2.0, 3.0, 5.0, 7.5)
HOLDOUT_COUNT = 100
SHEET_COLUMNS = 16


def sheet_rows(name: str, copies: np.ndarray, fresh: np.ndarray, training: np.ndarray) -> list[tuple[str, np.ndarray]]:
    return [
        (f"{name}: duplicated captions", copies[:SHEET_COLUMNS]),
        ("their training images", training[:SHEET_COLUMNS]),
        (f"{name}: holdout captions", fresh[:SHEET_COLUMNS]),
    ]


def draw_sheet(rows: list[tuple[str, np.ndarray]], scale: int = 2) -> Image.Image:
    """Labelled rows of 32×32 images, upscaled by nearest neighbour."""
    size, pad, label = 32 * scale, 4, 18
    width = SHEET_COLUMNS * (size + pad) + pad
    sheet = Image.new("RGB", (width, len(rows) * (size + pad + label) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(13)
    for r, (title, images) in enumerate(rows):
        top = pad + r * (size + pad + label)
        draw.text((pad, top), title, fill="black", font=font)
        for c, image in enumerate(images):
            tile = Image.fromarray(image).resize((size, size), Image.NEAREST)
            sheet.paste(tile, (pad + c * (size + pad), top + label))
    return sheet


def card_summary(folder: Path) -> dict:
    card = json.loads((folder / "config.json").read_text(encoding="utf-8"))["card"]
    hyper = card["hyperparameters"]
    recipe = f"{card.get('space', 'pixel')}, {card.get('prediction', 'epsilon')}"
    if hyper.get("min_snr_gamma"):
        recipe += f", min-SNR-{hyper['min_snr_gamma']:g}"
    samples = card["steps_done"] * hyper["batch_size"]
    cpu = card.get("cpu_seconds")
    cpu_text = f"{cpu / 60:.1f}" if cpu is not None else f"not recorded ({card['train_seconds'] / 60:.0f} min wall)"
    return {"recipe": recipe, "cpu_minutes": cpu_text, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", help="NAME=FOLDER of a trained candidate")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=HERE / "recipe_study")
    parser.add_argument("--sheet-cfg", type=float, default=5.0, help="the CFG scale the sample sheet shows")
    parser.add_argument("--note", action="append", default=[], help="a line to print under the table")
    parser.add_argument("--cache", type=Path, help="reuse (and keep) each candidate's measurements in this folder")
    args = parser.parse_args()
    torch.manual_seed(0)
    dataset = EmojiMem.load()
    own = np.array([p.own_id for p in load_prompts("duplicated")])
    table, sheet = [], []
    for spec in args.candidates:
        name, folder = spec.split("=", 1)
        summary = card_summary(Path(folder))
        cached = args.cache / f"{name}-{summary['samples']}.npz" if args.cache else None
        if cached is not None and cached.is_file():
            with np.load(cached, allow_pickle=False) as saved:
                rows, copies, fresh = json.loads(str(saved["rows"])), saved["copies"], saved["fresh"]
        else:
            backend = EmojiMemBackend.load(folder)
            rows = []
            for cfg in CFG_SCALES:
                quality = measure_copies(backend, dataset, cfg, args.steps, [0], HOLDOUT_COUNT)
                rows.append(quality.row())
                print(json.dumps(rows[-1]), flush=True)
                if cfg == args.sheet_cfg:
                    copies, fresh = quality.copies, quality.fresh
            if cached is not None:
                args.cache.mkdir(parents=True, exist_ok=True)
                np.savez(cached, rows=np.array(json.dumps(rows)), copies=copies, fresh=fresh)
        table += [{"candidate": name, **summary, **row} for row in rows]
        sheet += sheet_rows(f"{name} (CFG {args.sheet_cfg:g})", copies, fresh, dataset.images[own])
    lines = [
        "# EmojiMem v2 recipe study",
        "",
        "Every candidate trained from scratch on this 2-core CPU for the CPU minutes shown (process CPU time of a "
        "one-thread run, so the budget is the same whatever else ran beside it), then sampled with DDIM, "
        f"{args.steps} steps, seed 0: all {len(own)} duplicated captions and the first {HOLDOUT_COUNT} holdout "
        "captions. own-NN: the nearest training image in pixel space is the prompt's own. MAE: median per-pixel "
        "mean |x − own training image| (0–1). Speckle: median mean |x − median3×3(x)| over the training emoji's.",
        "",
        "| candidate | recipe | CPU min | samples seen | CFG | own-NN | MAE to own | speckle (dup.) "
        "| speckle (holdout) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table:
        lines.append(
            f"| {row['candidate']} | {row['recipe']} | {row['cpu_minutes']} | {row['samples']:,} | {row['cfg']:g} "
            f"| {row['own_nn']:.2f} | {row['mae_own']:.3f} | {row['speckle_duplicated']:.2f}× "
            f"| {row['speckle_holdout']:.2f}× |"
        )
    lines += [""] + [line for note in args.note for line in (note, "")]
    lines += [f"Sample sheet (CFG {args.sheet_cfg:g}): `{args.out.name}.png`.", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    draw_sheet(sheet).save(args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
