"""A contact sheet of duplicated captions under every mitigation, to judge by eye: one row per caption, columns
baseline | AMG main | STP | DTP | OG+DTP | training image, each image framed red where the scorer calls it a copy.
Read from the evaluation's saved images (seed 0), so the sheet shows the very samples the tables count.

Run (after the evaluation commands in assets/MODEL_CARD.md): python -m benchmarks.method_sheet
→ benchmarks/method_sheet.png and .md
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from memdemo.data.emojimem import EmojiMem
from memdemo.evaluation.prompts import load_prompts
from memdemo.evaluation.quality import mean_abs_error, nearest_pixel, speckle
from memdemo.evaluation.scoring import CopydetScorer, read_images
from memdemo.evaluation.summary import load_samples
from memdemo.ui.judge import Judge

HERE = Path(__file__).resolve().parent
MODEL = "emojimem-v2-ddpm"
FOLDERS = (HERE / MODEL, HERE / f"{MODEL}-methods")
METHODS = ("amg-main", "stp", "dtp", "og-dtp")
TILE, PAD, HEADER = 64, 6, 22
PIXEL_COPY_MAE = 0.05  # the v2 copy target: a sample this close to its own training image is that image


def saved_images(folders: tuple[Path, ...], seed: int) -> dict[tuple[str, str], np.ndarray]:
    """(method, caption) → the evaluation's saved image of that duplicated caption at `seed`."""
    rows = [r for r in load_samples(list(folders)) if r["seed"] == seed and r["prompt_set"] == "duplicated"]
    rows = [r for r in rows if r.get("image_path")]
    images = read_images([r["image_path"] for r in rows])
    return {(r["method"], r["prompt"]): image for r, image in zip(rows, images, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "method_sheet")
    parser.add_argument(
        "--from", dest="folders", type=Path, nargs="+", default=list(FOLDERS), help="evaluation folders to read"
    )
    parser.add_argument("--title", default=MODEL, help="the model the folders evaluated, for the heading")
    args = parser.parse_args()
    dataset = EmojiMem.load()
    judge = Judge(CopydetScorer.load(), dataset)
    saved = saved_images(tuple(args.folders), args.seed)
    columns = ["baseline", *METHODS, "training image"]
    prompts = [p for p in load_prompts("duplicated", args.prompts) if all((m, p.text) in saved for m in columns[:-1])]
    if not prompts:
        raise SystemExit(f"no saved images of {', '.join(columns[:-1])} in {', '.join(map(str, args.folders))}")
    rows, copies = [], {name: 0 for name in columns[:-1]}
    for prompt in prompts:
        images = {name: saved[name, prompt.text] for name in columns[:-1]}
        marks = {name: judge.judge(image, prompt.text).copy for name, image in images.items()}
        for name, copy in marks.items():
            copies[name] += copy
        rows.append((prompt.text, images, marks, dataset.images[prompt.own_id], prompt.own_id))
    draw_sheet(rows, columns).save(args.out.with_suffix(".png"))
    lines = [
        f"# Mitigations by eye: `{args.title}`",
        "",
        f"`{_command(args)}`: the first {len(prompts)} duplicated captions, seed {args.seed}, CFG 7.5, 50 DDIM "
        f"steps, the evaluation's own samples ({', '.join(f'`{_shown(folder)}`' for folder in args.folders)}). A red "
        "frame marks an image the scoring descriptor calls a copy (copydet > τ).",
        "",
        *sheet_table(rows, columns[:-1], copies, dataset),
        "",
        f"![sheet]({args.out.with_suffix('.png').name})",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")


def _command(args: argparse.Namespace) -> str:
    """The command that rewrites this sheet."""
    command = f"python -m benchmarks.method_sheet --seed {args.seed}"
    if args.out != HERE / "method_sheet":
        command += f" --out {_shown(args.out)}"
    if [folder.resolve() for folder in args.folders] != [folder.resolve() for folder in FOLDERS]:
        command += f" --from {' '.join(_shown(folder) for folder in args.folders)} --title {shlex.quote(args.title)}"
    return command


def _shown(folder: Path) -> str:
    """A folder as the report names it: relative to the repository when inside it."""
    folder = folder.resolve()
    return str(folder.relative_to(HERE.parent)) if folder.is_relative_to(HERE.parent) else str(folder)


def sheet_table(rows: list, methods: list[str], copies: dict[str, int], dataset: EmojiMem) -> list[str]:
    """Per column: the scorer's copy share, pixel own-NN, median MAE to the own training image, how many images within
    MAE 0.05 of their own training image (what the eye calls a copy) the scorer does not call a copy, and median
    speckle (the training emoji's median is the reference for clean)."""
    train_ids = np.array(dataset.ids("train"))
    owns = np.stack([training for _, _, _, training, _ in rows])
    own_ids = np.array([own_id for *_, own_id in rows])
    lines = [
        f"Training emoji speckle (median): {np.median(speckle(dataset.images[train_ids])):.4f}.",
        "",
        "| column | copies (scorer) | own NN (pixel) | MAE to own (median) | pixel copies not called copies "
        "| speckle (median) |",
        "|---|---|---|---|---|---|",
    ]
    for name in methods:
        images = np.stack([images[name] for _, images, *_ in rows])
        nearest, _ = nearest_pixel(images, dataset.images[train_ids])
        own_nn = np.mean(train_ids[nearest] == own_ids)
        errors = mean_abs_error(images, owns)
        called = [marks[name] for _, _, marks, _, _ in rows]
        missed = sum(error <= PIXEL_COPY_MAE and not copy for error, copy in zip(errors, called, strict=True))
        lines.append(
            f"| {name} | {copies[name] / len(rows):.2f} | {own_nn:.2f} | {np.median(errors):.3f} | {missed} "
            f"| {np.median(speckle(images)):.4f} |"
        )
    return lines


def draw_sheet(rows: list, columns: list[str]) -> Image.Image:
    """Columns of 64-px tiles under a header; a red frame where the scorer says copy."""
    width = len(columns) * (TILE + PAD) + PAD
    sheet = Image.new("RGB", (width, HEADER + len(rows) * (TILE + PAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(11)
    for c, name in enumerate(columns):
        draw.text((PAD + c * (TILE + PAD), 4), name, fill="black", font=font)
    for r, (_, images, marks, training, _) in enumerate(rows):
        top = HEADER + r * (TILE + PAD)
        tiles = [*(images[name] for name in columns[:-1]), training]
        for c, image in enumerate(tiles):
            left = PAD + c * (TILE + PAD)
            name = columns[c]
            if marks.get(name):
                draw.rectangle([left - 3, top - 3, left + TILE + 2, top + TILE + 2], outline=(220, 30, 30), width=3)
            sheet.paste(Image.fromarray(np.asarray(image)).resize((TILE, TILE), Image.NEAREST), (left, top))
    return sheet


if __name__ == "__main__":
    main()
