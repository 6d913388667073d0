"""A contact sheet of duplicated captions under every mitigation, to judge by eye: one row per caption, columns
baseline | AMG main | STP | DTP | OG+DTP | training image, each mitigated image with the scorer's verdict mark.

Run: python -m benchmarks.method_sheet --model emojimem-v2-ddpm → benchmarks/method_sheet.png and .md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from memdemo.backends import load_backend
from memdemo.data.emojimem import EmojiMem
from memdemo.evaluation.prompts import load_prompts
from memdemo.evaluation.scoring import CopydetScorer
from memdemo.guidance import SimilarityMonitor, variant_policy
from memdemo.paths import DEFAULT_GUIDE_INDEX
from memdemo.reference.index import ReferenceIndex
from memdemo.sampling import Generation, Request
from memdemo.ui.judge import Judge

HERE = Path(__file__).resolve().parent
METHODS = ("amg-main", "stp", "dtp", "og-dtp")
TILE, PAD, HEADER = 64, 6, 22


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emojimem-v2-ddpm")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--out", type=Path, default=HERE / "method_sheet")
    args = parser.parse_args()
    torch.manual_seed(0)
    dataset = EmojiMem.load()
    backend = load_backend(args.model, "cpu")
    monitor = SimilarityMonitor(backend, ReferenceIndex.load(DEFAULT_GUIDE_INDEX))
    judge = Judge(CopydetScorer.load(), dataset)
    prompts = load_prompts("duplicated", args.prompts)
    columns = ["baseline", *METHODS, "training image"]
    rows, copies = [], {name: 0 for name in columns[:-1]}
    for prompt in prompts:
        request = Request(prompt.text, args.seed, cfg=args.cfg)
        images = {}
        for method in METHODS:
            generation = Generation(backend, request, variant_policy(method, args.cfg, monitor), monitor, method)
            generation.run()
            images.setdefault("baseline", generation.images["baseline"])
            images[method] = generation.images["mitigated"]
        marks = {name: judge.judge(image, prompt.text).copy for name, image in images.items()}
        for name, copy in marks.items():
            copies[name] += copy
        rows.append((prompt.text, images, marks, dataset.images[prompt.own_id]))
        print(prompt.text, {name: "COPY" if copy else "-" for name, copy in marks.items()}, flush=True)
    draw_sheet(rows, columns).save(args.out.with_suffix(".png"))
    n = len(prompts)
    lines = [
        f"# Mitigations by eye: `{args.model}`",
        "",
        f"`python -m benchmarks.method_sheet --model {args.model}`: the first {n} duplicated captions, seed "
        f"{args.seed}, CFG {args.cfg:g}, 50 DDIM steps. A red frame marks an image the scoring descriptor calls a "
        "copy (copydet > τ). Share called a copy: "
        + ", ".join(f"{name} {copies[name] / n:.2f}" for name in columns[:-1])
        + ".",
        "",
        f"![sheet]({args.out.with_suffix('.png').name})",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")


def draw_sheet(rows: list, columns: list[str]) -> Image.Image:
    """Columns of 64-px tiles under a header; a red frame where the scorer says copy."""
    width = len(columns) * (TILE + PAD) + PAD
    sheet = Image.new("RGB", (width, HEADER + len(rows) * (TILE + PAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(11)
    for c, name in enumerate(columns):
        draw.text((PAD + c * (TILE + PAD), 4), name, fill="black", font=font)
    for r, (_, images, marks, training) in enumerate(rows):
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
