"""The run loop: one Generation per (prompt, seed, method), one JSONL row per sample, rows already written skipped."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from memdemo.backends import Backend
from memdemo.evaluation.methods import make_method_policy
from memdemo.evaluation.prompts import Prompt
from memdemo.guidance import SimilarityMonitor
from memdemo.sampling import Generation, Request
from memdemo.trace import Trace, Trajectory

SAMPLES_FILE = "samples.jsonl"
KEY_FIELDS = ("model", "prompt_set", "prompt", "seed", "method", "steps", "cfg", "scheduler")


@dataclass(frozen=True)
class Settings:
    """Sampling settings shared by every generation of one evaluation."""

    steps: int = 50
    cfg: float = 7.5
    scheduler: str = "ddim"


def row_key(row: dict) -> tuple:
    """What identifies a sample: a rerun skips rows with a key already in the file."""
    return tuple(row.get(field) for field in KEY_FIELDS)


def read_rows(path: Path) -> list[dict]:
    """Rows of a samples file; a torn last line (an interrupted write) is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def sample_row(trajectory: Trajectory, trace: Trace, prompt: Prompt, base: dict, method: str) -> dict:
    """One JSONL row for one finished trajectory."""
    final, norms = trajectory.final, [step.cond_uncond_norm for step in trajectory.steps]
    own = None if prompt.own_id is None or final.nearest_id is None else final.nearest_id == prompt.own_id
    return {
        **base,
        "method": method,
        "own_id": prompt.own_id,
        "nearest_id": final.nearest_id,
        "nearest_caption": final.nearest_caption,
        "similarity": final.similarity,
        "nl2": final.nl2,
        "own": own,
        "norm_first": norms[0] if norms else None,
        "norm_mean": sum(norms) / len(norms) if norms else None,
        "fired_steps": [step.index for step in trajectory.steps if step.active],
        "seconds": trace.run["seconds"],
        "warnings": trace.run["warnings"],
    }


def _append(path: Path, row: dict) -> None:
    """Append one row and flush it, so an interruption loses at most the sample in progress."""
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(row, ensure_ascii=False) + "\n")


def run_evaluation(
    backend: Backend,
    monitor: SimilarityMonitor | None,
    prompts: list[Prompt],
    prompt_set: str,
    seeds: Iterable[int],
    methods: list[str],
    out: Path,
    settings: Settings = Settings(),
    progress: bool = True,
) -> int:
    """Sample every (prompt, seed, method) not yet in OUT/samples.jsonl; returns the number of rows written.

    Each Generation yields a baseline and a mitigated image from the same x_T: the baseline is recorded once per
    (prompt, seed) as method "baseline", the mitigated image under the method's name. `seconds` is the wall time of
    the Generation that made the row (both trajectories, batched).
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / SAMPLES_FILE
    done = {row_key(row) for row in read_rows(path)}
    mitigations = [method for method in methods if method != "baseline"]
    jobs = [(prompt, seed) for prompt in prompts for seed in seeds]
    written = 0
    for prompt, seed in tqdm(jobs, desc=f"{backend.name} {prompt_set}", unit="sample", disable=not progress):
        base = {"model": backend.name, "prompt_set": prompt_set, "prompt": prompt.text, "seed": seed}
        base.update(steps=settings.steps, cfg=settings.cfg, scheduler=settings.scheduler)
        need_baseline = row_key({**base, "method": "baseline"}) not in done
        pending = [m for m in mitigations if row_key({**base, "method": m}) not in done]
        if need_baseline and not pending:
            pending = ["baseline"]
        for method in pending:
            request = Request(prompt.text, seed, settings.steps, settings.cfg, settings.scheduler)
            policy = make_method_policy(method, settings.cfg, monitor)
            trace = Generation(backend, request, policy, monitor, method).run()
            rows = [sample_row(trace.mitigated, trace, prompt, base, method)] if method != "baseline" else []
            if need_baseline:
                rows.insert(0, sample_row(trace.baseline, trace, prompt, base, "baseline"))
                need_baseline = False
            for row in rows:
                _append(path, row)
                done.add(row_key(row))
            written += len(rows)
    return written
