"""The demo's examples, grouped, each with a "what you should see" line measured on the shipped model.

For every group the script samples candidate (caption, seed) pairs with the demo's default settings, judges both
images with the scoring descriptor (the verdict the page shows) and keeps the first pairs that show what the group is
about: a memorized caption whose baseline is a copy of its own training image; a caption seen once; a never-trained
(holdout) caption; and prompts that are not emoji names. The memorized group opens with a showcase, a (caption, seed,
method) chosen by eye from the evaluation's sheets (benchmarks/method_sheet-seed1.png) as a mitigated image that is a
clean emoji and not the training image; no measure here can tell a clean emoji from a blob, so the eye chooses and
the script checks the rest live: the baseline must copy the prompt's own image and the mitigated image must not.
Rerun the script whenever the model changes.

Run: python -m benchmarks.examples → assets/examples.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from memdemo.backends import Backend, load_backend
from memdemo.data.emojimem import EmojiMem
from memdemo.evaluation.prompts import load_prompts
from memdemo.evaluation.quality import mean_abs_error
from memdemo.evaluation.scoring import CopydetScorer
from memdemo.guidance import SimilarityMonitor
from memdemo.guidance.registry import method_spec
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
# Chosen by eye on benchmarks/method_sheet-seed1.png: STP turns the memorized warning sign into a clean, worried face.
SHOWCASE = ("warning", 1, "stp")


def verdict(judgement: Judgement) -> str:
    """What the detector says of one image: a copy of the prompt's own image, a copy of another one, or neither."""
    if not judgement.copy:
        return f"not a copy ({judgement.similarity:.2f} to the nearest, “{judgement.nearest_caption}”)"
    if judgement.nearest_is_own:
        return f"copies its own training image ({judgement.similarity:.2f})"
    return f"another training emoji, “{judgement.nearest_caption}” ({judgement.similarity:.2f})"


def expectation(group: str, base: Judgement, mitigated: Judgement, method: str, errors: tuple) -> str:
    """The measured line shown next to an example: the detector's verdicts and, for a training caption, the pixel
    error to its own training image (a copy of an exact-copy model is within a few hundredths of it)."""
    if group in ("holdout", "not-emoji"):
        word = "a copy" if base.copy else "not a copy"
        return f"No training image to copy: baseline {word} ({base.similarity:.2f}), nearest “{base.nearest_caption}”."
    return (
        f"Measured: baseline {verdict(base)}, MAE {errors[0]:.2f}; {method}: {verdict(mitigated)}, MAE to the "
        f"prompt's training image {errors[1]:.2f}."
    )


def is_showcase(base: Judgement, mitigated: Judgement) -> bool:
    """The baseline copies the prompt's own image; the mitigated image is neither nearest to it nor a copy of it."""
    own_copy = mitigated.own_similarity is not None and mitigated.own_similarity > mitigated.threshold
    return base.copy and base.nearest_is_own and not mitigated.nearest_is_own and not own_copy


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


def run_example(
    backend: Backend, monitor: SimilarityMonitor, judge: Judge, prompt: str, seed: int, method: str
) -> tuple:
    """One live run with the page's settings: both judgements and both images' MAE to the prompt's own image."""
    settings, _ = build_settings({"prompt": prompt, "seed": seed, "method": method})
    generation = Generation(backend, settings.request(), settings.policy(monitor), monitor, settings.method)
    generation.run()
    base, mitigated = (judge.judge(generation.images[side], prompt) for side in ("baseline", "mitigated"))
    own = judge.own_image(prompt)
    errors = tuple(
        float("nan") if own is None else float(mean_abs_error(generation.images[side][None], own[None])[0])
        for side in ("baseline", "mitigated")
    )
    return base, mitigated, errors


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

    def add(group: str, prompt: str, seed: int, method: str, judged: tuple) -> None:
        line = expectation(group, *judged[:2], method_spec(method).label, judged[2])
        examples.append({"group": group, "prompt": prompt, "seed": seed, "method": method, "expect": line})
        print(json.dumps(examples[-1], ensure_ascii=False), flush=True)

    judged = run_example(backend, monitor, judge, *SHOWCASE)
    if not is_showcase(*judged[:2]):
        raise SystemExit(f"the showcase {SHOWCASE} no longer removes the copy ({judged[:2]}); choose another by eye")
    add("memorized", *SHOWCASE, judged)
    for group in GROUPS:
        found, shown = (1, {SHOWCASE[0]}) if group == "memorized" else (0, set())
        for prompt, seed in candidates(group, dataset):
            if prompt in shown:
                continue
            judged = run_example(backend, monitor, judge, prompt, seed, defaults.method)
            if not keep(group, judged[0]):
                continue
            add(group, prompt, seed, defaults.method, judged)
            shown.add(prompt)
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
