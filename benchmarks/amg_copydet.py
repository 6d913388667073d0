"""Choosing c3 for object-level AMG on EmojiMem: AMG main with G_sim on the copydet-guide descriptor at several scales,
scored by the independent copydet descriptor and in pixel space, with a contact sheet to check by eye that the object
changes (not only texture) and stays clean.

Run: python -m benchmarks.amg_copydet [--model emojimem-v2-ddpm] [--c3 300 1000 3000]
→ benchmarks/amg_copydet.md, benchmarks/amg_copydet.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from memdemo.backends import load_backend
from memdemo.data.emojimem import DEFAULT_DIR, EmojiMem
from memdemo.evaluation.prompts import load_prompts
from memdemo.evaluation.quality import mean_abs_error, nearest_pixel, speckle
from memdemo.evaluation.scoring import CopydetScorer
from memdemo.guidance import SimilarityMonitor, build_policy
from memdemo.paths import DEFAULT_GUIDE_INDEX
from memdemo.reference.index import ReferenceIndex
from memdemo.sampling import Generation, Request

HERE = Path(__file__).resolve().parent
C3_VALUES = (300.0, 1000.0, 3000.0)


def configurations(c3_values: list[float]) -> dict[str, tuple[str, dict]]:
    """Row label → (method, its registry parameters)."""
    rows = {"baseline (CFG 7.5)": ("baseline", {})}
    for c3 in c3_values:
        rows[f"AMG main, c3 = {c3:g}"] = ("amg", {"c3": c3})
    rows["AMG official-sd (c3 ramped by exp((1000 − t)/170))"] = ("amg", {"preset": "official-sd"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emojimem-v2-ddpm")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--c3", type=float, nargs="+", default=list(C3_VALUES))
    args = parser.parse_args()
    torch.manual_seed(0)
    backend = load_backend(args.model, "cpu")
    scorer = CopydetScorer.load()
    prompts = load_prompts("duplicated", args.prompts)
    dataset = EmojiMem.load(DEFAULT_DIR)
    train_ids = np.array(dataset.ids("train"))
    owns = dataset.images[[prompt.own_id for prompt in prompts]]
    monitor = SimilarityMonitor(backend, ReferenceIndex.load(DEFAULT_GUIDE_INDEX))
    lines = [
        f"# Object-level AMG on `{args.model}`: choosing c3",
        "",
        f"`python -m benchmarks.amg_copydet --model {args.model}`: the first {args.prompts} duplicated captions, seed "
        f"{args.seed}, CFG 7.5, 50 DDIM steps. AMG main (G_spe, G_dup and G_sim behind one gate) with G_sim on the "
        "`copydet-guide` descriptor and its calibrated λ_t; the columns score the final image with the independent "
        f"`copydet` descriptor (τ = {scorer.threshold:.3f}) and in pixel space. Training emoji speckle (median): "
        f"{np.median(speckle(dataset.images[train_ids])):.4f}. Sheet rows: the configurations in table order, then "
        "the training images.",
        "",
        "| configuration | copies (copydet > τ) | own NN (pixel) | MAE to own (median) | speckle (median) "
        "| mean steps G_sim acted |",
        "|---|---|---|---|---|---|",
    ]
    sheet_rows = []
    for label, (method, options) in configurations(args.c3).items():
        images, acted = [], []
        for prompt in prompts:
            policy = build_policy(method, options, 7.5, monitor)
            generation = Generation(backend, Request(prompt.text, args.seed), policy, monitor, method)
            trace = generation.run()
            images.append(generation.images["mitigated"])
            acted.append(sum("sim" in step.terms for step in trace.mitigated.steps))
        stacked = np.stack(images)
        copies = np.mean(scorer.score(stacked).similarity > scorer.threshold)
        nearest, _ = nearest_pixel(stacked, dataset.images[train_ids])
        own = np.mean(train_ids[nearest] == np.array([prompt.own_id for prompt in prompts]))
        mae, noise = np.median(mean_abs_error(stacked, owns)), np.median(speckle(stacked))
        lines.append(f"| {label} | {copies:.2f} | {own:.2f} | {mae:.3f} | {noise:.4f} | {np.mean(acted):.1f} |")
        sheet_rows.append(np.concatenate(images, 1))
        print(lines[-1], flush=True)
    sheet_rows.append(np.concatenate(list(owns), 1))
    sheet = np.concatenate(sheet_rows, 0)
    Image.fromarray(sheet).resize((sheet.shape[1] * 3, sheet.shape[0] * 3), Image.NEAREST).save(
        HERE / "amg_copydet.png"
    )
    lines += ["", "![sheet](amg_copydet.png)", ""]
    (HERE / "amg_copydet.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
