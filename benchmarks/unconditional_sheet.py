"""What the transition methods and opposite guidance start from: the model's unconditional samples, one per seed.

Before their switch, STP and DTP follow ε_u (and OG follows ε_u − λ(ε_c − ε_u)), so their early steps walk toward
the sample that the prompt-free branch gives at the same seed. This sheet shows that sample for seeds 0..N−1 at the
demo's settings, each judged by the scoring descriptor.

Run: python -m benchmarks.unconditional_sheet → benchmarks/unconditional_sheet.png and .md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from memdemo.backends import Backend, load_backend
from memdemo.data.emojimem import EmojiMem
from memdemo.evaluation.scoring import CopydetScorer
from memdemo.guidance import build_policy
from memdemo.sampling import Generation
from memdemo.ui.judge import Judge
from memdemo.ui.settings import RunSettings

HERE = Path(__file__).resolve().parent
TILE, PAD, HEADER = 64, 6, 18


def unconditional(backend: Backend, seed: int, settings: RunSettings) -> np.ndarray:
    """The plain sampler with the empty prompt (ε_u alone) at the demo's steps and scheduler."""
    request = RunSettings(prompt="", seed=seed, steps=settings.steps, cfg=settings.cfg).request()
    generation = Generation(backend, request, build_policy("baseline", {}, settings.cfg, None), None, "baseline")
    generation.run()
    return generation.images["baseline"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emojimem-v2-ddpm")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--out", type=Path, default=HERE / "unconditional_sheet")
    args = parser.parse_args()
    settings = RunSettings()
    backend = load_backend(args.model, "cpu")
    judge = Judge(CopydetScorer.load(), EmojiMem.load())
    images = [unconditional(backend, seed, settings) for seed in range(args.seeds)]
    judgements = [judge.judge(image, "") for image in images]
    sheet = Image.new("RGB", (PAD + args.seeds * (TILE + PAD), HEADER + TILE + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for seed, image in enumerate(images):
        left = PAD + seed * (TILE + PAD)
        draw.text((left, 3), f"seed {seed}", fill="black", font=ImageFont.load_default(11))
        sheet.paste(Image.fromarray(image).resize((TILE, TILE), Image.NEAREST), (left, HEADER))
    sheet.save(args.out.with_suffix(".png"))
    rows = [
        f"| {seed} | {j.similarity:.2f} | {'yes' if j.copy else 'no'} | {j.nearest_caption} |"
        for seed, j in enumerate(judgements)
    ]
    copies = sum(j.copy for j in judgements)
    lines = [
        f"# Unconditional samples: `{args.model}`",
        "",
        f"`python -m benchmarks.unconditional_sheet --model {args.model} --seeds {args.seeds}`: the empty prompt, "
        f"seeds 0–{args.seeds - 1}, {settings.steps} "
        f"{settings.scheduler.upper()} steps (CFG has no effect without a prompt). What STP, DTP and opposite guidance "
        f"follow before their switch. The scorer (τ = {judge.threshold:.3f}) calls {copies} of {args.seeds} a copy of "
        "a training emoji.",
        "",
        "| seed | copydet to the nearest training emoji | a copy (> τ) | nearest training emoji |",
        "|---|---|---|---|",
        *rows,
        "",
        f"![unconditional]({args.out.with_suffix('.png').name})",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
