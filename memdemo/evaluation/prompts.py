"""Prompt sets: EmojiMem captions by training multiplicity (duplicated, single, holdout), the published Stable
Diffusion memorized / unmemorized LAION captions (assets/sd-prompts), or one prompt per file line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from memdemo.data.emojimem import DEFAULT_DIR, EmojiMem
from memdemo.evaluation.methods import EvaluationError
from memdemo.paths import assets_dir

PROMPT_SETS = {
    "duplicated": "training captions whose image appears more than once (×32)",
    "single": "training captions whose image appears once",
    "holdout": "captions of the held-out emoji (never trained on)",
    "sd-memorized": "500 LAION captions Stable Diffusion v1.x memorizes (Webster 2023, via Wen et al. and NeMo)",
    "sd-unmemorized": "500 LAION captions it does not memorize (NeMo's control set)",
}
SD_PROMPT_FOLDER = "sd-prompts"
SD_PROMPT_FILES = {"sd-memorized": "memorized.jsonl", "sd-unmemorized": "unmemorized.jsonl"}


@dataclass(frozen=True)
class Prompt:
    """One prompt and, when it is an EmojiMem caption, the id of its own EmojiMem image."""

    text: str
    own_id: int | None = None


def _select(dataset: EmojiMem, name: str) -> list[Prompt]:
    """The records of one EmojiMem prompt set, in id order."""
    keep = {
        "duplicated": lambda r: r.split == "train" and r.copies > 1,
        "single": lambda r: r.split == "train" and r.copies == 1,
        "holdout": lambda r: r.split == "holdout",
    }[name]
    return [Prompt(r.caption, r.id) for r in dataset.records if keep(r)]


def _from_file(path: Path, dataset: EmojiMem) -> list[Prompt]:
    """One prompt per non-empty line; a line equal to an EmojiMem caption gets that image's id."""
    if not path.is_file():
        emojimem = ", ".join(name for name in PROMPT_SETS if name not in SD_PROMPT_FILES)
        raise EvaluationError(
            f"--prompts {path}: no such file, and not a prompt set ({emojimem}) or a Stable Diffusion prompt set "
            f"({', '.join(SD_PROMPT_FILES)})"
        )
    by_caption = {r.caption: r.id for r in dataset.records}
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [Prompt(line, by_caption.get(line)) for line in lines if line]
    if not prompts:
        raise EvaluationError(f"--prompts {path}: the file holds no prompts (one per line)")
    return prompts


def _sd_prompts(name: str) -> list[Prompt]:
    """A published SD prompt set, in the source's row order; no own image (own_id None)."""
    path = assets_dir() / SD_PROMPT_FOLDER / SD_PROMPT_FILES[name]
    if not path.is_file():
        raise EvaluationError(f"--prompts {name}: {path} is missing; it ships with memdemo (see its SOURCE.md)")
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            prompts.append(Prompt(str(json.loads(line)["prompt"])))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise EvaluationError(f"{path}, line {number}: not a JSON object with a prompt ({error})") from error
    return prompts


def prompt_set_name(spec: str) -> str:
    """The name rows carry: the set's name, or the file's stem."""
    return spec if spec in PROMPT_SETS else Path(spec).stem


def load_prompts(spec: str, limit: int | None = None, dataset_dir: Path = DEFAULT_DIR) -> list[Prompt]:
    """The prompts of a named set or a file, the first `limit` of them (deterministic order)."""
    if limit is not None and limit < 1:
        raise EvaluationError(f"--limit must be at least 1, got {limit}")
    if spec in SD_PROMPT_FILES:
        prompts = _sd_prompts(spec)
    else:
        dataset = EmojiMem.load(dataset_dir)
        prompts = _select(dataset, spec) if spec in PROMPT_SETS else _from_file(Path(spec), dataset)
    return prompts[:limit] if limit is not None else prompts
