"""Stable Diffusion's examples in the demo, chosen in code from the shipped NeMo prompt lists (assets/sd-prompts):
the verbatim and template memorized prompts with the highest published SSCD, and a few unmemorized ones."""

from __future__ import annotations

import functools
import json

from memdemo.errors import MemdemoError
from memdemo.evaluation.prompts import SD_PROMPT_FILES, SD_PROMPT_FOLDER
from memdemo.paths import assets_dir

NOTE = (
    "Prompts, labels and SSCD scores from the NeMo list (Hintersdorf et al., NeurIPS 2024, MIT licence; "
    "assets/sd-prompts/SOURCE.md): the authors' measurements. Nothing here was measured on Stable Diffusion."
)
# How many examples of each group: the memorized ones with the highest mean SSCD, the first unmemorized ones.
PER_GROUP = {"VM": 4, "TM": 2, "unmemorized": 3}
GROUPS = {
    "VM": "Memorized verbatim (VM in the NeMo list): generations reproduce a training image",
    "TM": "Memorized as a template (TM in the NeMo list): a training image's layout, details vary",
    "unmemorized": "Not memorized (NeMo's control set)",
}
KINDS = {"VM": "verbatim (VM)", "TM": "template (TM)"}


def published_rows(name: str) -> list[dict]:
    """The rows of one shipped SD prompt file (`sd-memorized` or `sd-unmemorized`), in the source's order."""
    path = assets_dir() / SD_PROMPT_FOLDER / SD_PROMPT_FILES[name]
    if not path.is_file():
        raise MemdemoError(f"{path} is missing; it ships with memdemo (see {SD_PROMPT_FOLDER}/SOURCE.md), reinstall it")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def expectation(row: dict) -> str:
    """What the source reports for a prompt, as the example's label says it."""
    if "type" not in row:
        return "NeMo list: not memorized; not measured here"
    return f"NeMo list: {KINDS[row['type']]}, their mean SSCD {row['mean_sscd']:.2f}; not measured here"


@functools.cache
def sd_card() -> dict:
    """The SD examples in the shape of assets/examples.json: groups, then examples with prompt, seed and expect."""
    memorized = [row for row in published_rows("sd-memorized") if row.get("mean_sscd") is not None]
    chosen = {
        kind: sorted((row for row in memorized if row["type"] == kind), key=lambda row: -row["mean_sscd"])
        for kind in KINDS
    }
    chosen["unmemorized"] = published_rows("sd-unmemorized")
    examples = [
        {"group": group, "prompt": row["prompt"], "seed": 0, "expect": expectation(row)}
        for group, rows in chosen.items()
        for row in rows[: PER_GROUP[group]]
    ]
    return {"groups": GROUPS, "examples": examples}


@functools.cache
def sd_memorized_prompts() -> list[str]:
    """Every shipped memorized SD prompt, sorted, for the searchable list."""
    return sorted({row["prompt"] for row in published_rows("sd-memorized")})
