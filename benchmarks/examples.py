"""The demo's examples, grouped, each with a "what you should see" line measured on the shipped model.

For every group the script samples candidate (caption, seed) pairs with the demo's default method and settings, judges
both images with the scoring descriptor (the verdict the page shows) and keeps the first pairs that show what the group
is about: a memorized caption whose baseline is a copy of its own training image; a caption seen once; a never-trained
(holdout) caption; and prompts that are not emoji names. Rerun it whenever the model changes.

Run: python -m benchmarks.examples → assets/examples.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from memdemo.backends import load_backend
from memdemo.data.emojimem import EmojiMem
from memdemo.evaluation.prompts import load_prompts
from memdemo.evaluation.quality import mean_abs_error
from memdemo.evaluation.scoring import CopydetScorer
from memdemo.guidance import SimilarityMonitor
from memdemo.paths import DEFAULT_GUIDE_INDEX, assets_dir
from memdemo.reference.index import ReferenceIndex
from memdemo.sampling import Generation
from memdemo.ui.judge import Judge, Judgement
from memdemo.ui.settings import RunSettings, build_settings

GROUPS = {
    "memorized": "Memorized: captions duplicated ×32 in training",
    "single": "Seen once in training",
    "holdout": "Never trained (holdout emoji)",
    "not-emoji": "Not an emoji name",
}
NOT_EMOJI = ("a photo of a cat on a sofa", "an oil painting of a harbour at sunset", "the quick brown fox")
PER_GROUP = 3


def expectation(group: str, base: Judgement, mitigated: Judgement, method: str, errors: tuple) -> str:
    """The measured line shown next to an example: the detector's verdicts and, for a training caption, the pixel
    error to its own training image (a copy of an exact-copy model is within a few hundredths of it)."""
    if group in ("holdout", "not-emoji"):
        word = "a copy" if base.copy else "not a copy"
        return f"No training image to copy: baseline {word} ({base.similarity:.2f}), nearest “{base.nearest_caption}”."
    own = "its own training image" if base.nearest_is_own else f"“{base.nearest_caption}”"
    baseline = (
        f"baseline {'copies ' + own if base.copy else 'is not a copy'} ({base.similarity:.2f}, MAE {errors[0]:.2f})"
    )
    after = f"{method}: {'a copy' if mitigated.copy else 'not a copy'} by the detector ({mitigated.similarity:.2f})"
    return f"Measured: {baseline}; {after}, MAE to the training image {errors[1]:.2f}."


def keep(group: str, base: Judgement) -> bool:
    """Whether a sample shows its group's point: a memorized caption's baseline copies its own training image."""
    return base.copy and base.nearest_is_own if group == "memorized" else True


def candidates(group: str, dataset: EmojiMem) -> list[tuple[str, int]]:
    if group == "not-emoji":
        return [(prompt, 0) for prompt in NOT_EMOJI]
    name = {"memorized": "duplicated", "single": "single", "holdout": "holdout"}[group]
    prompts = load_prompts(name, limit=20 if group == "memorized" else PER_GROUP)
    return [(p.text, seed) for p in prompts for seed in range(2 if group == "memorized" else 1)]


def check_not_emoji(dataset: EmojiMem) -> None:
    """The "not an emoji name" prompts must not be captions of any EmojiMem image."""
    captions = set(dataset.captions)
    clashes = [prompt for prompt in NOT_EMOJI if prompt in captions]
    if clashes:
        raise SystemExit(f"these 'not an emoji' prompts are EmojiMem captions: {', '.join(clashes)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="emojimem-v2-ddpm", help="the demo's default model")
    parser.add_argument("--out", type=Path, default=assets_dir() / "examples.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    dataset = EmojiMem.load()
    check_not_emoji(dataset)
    backend = load_backend(args.model, "cpu")
    defaults = RunSettings()
    monitor = SimilarityMonitor(backend, ReferenceIndex.load(DEFAULT_GUIDE_INDEX))
    judge = Judge(CopydetScorer.load(), dataset)
    examples = []
    for group in GROUPS:
        found, shown = 0, set()
        for prompt, seed in candidates(group, dataset):
            if prompt in shown:
                continue
            settings, _ = build_settings({"prompt": prompt, "seed": seed})
            generation = Generation(backend, settings.request(), settings.policy(monitor), monitor, settings.method)
            generation.run()
            base, mitigated = (judge.judge(generation.images[side], prompt) for side in ("baseline", "mitigated"))
            if not keep(group, base):
                continue
            own = judge.own_image(prompt)
            errors = tuple(
                float("nan") if own is None else float(mean_abs_error(generation.images[side][None], own[None])[0])
                for side in ("baseline", "mitigated")
            )
            line = expectation(group, base, mitigated, "AMG", errors)
            examples.append({"group": group, "prompt": prompt, "seed": seed, "expect": line})
            shown.add(prompt)
            print(json.dumps(examples[-1], ensure_ascii=False), flush=True)
            found += 1
            if found == PER_GROUP:
                break
    card = {
        "model": args.model,
        "method": defaults.method,
        "cfg": defaults.cfg,
        "steps": defaults.steps,
        "groups": GROUPS,
        "command": "python -m benchmarks.examples",
        "examples": examples,
    }
    args.out.write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
