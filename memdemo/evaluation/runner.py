"""The run loop: one Generation per (prompt, seed, method), one JSONL row per sample, rows already written skipped."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from memdemo.backends import Backend
from memdemo.evaluation.methods import make_method_policy
from memdemo.evaluation.prompts import Prompt
from memdemo.guidance import SimilarityMonitor
from memdemo.sampling import Generation, Request
from memdemo.trace import Trace, Trajectory

SAMPLES_FILE = "samples.jsonl"
IMAGES_DIR = "images"
KEY_FIELDS = ("model", "prompt_set", "prompt", "seed", "method", "steps", "cfg", "scheduler")


@dataclass(frozen=True)
class Settings:
    """Sampling settings shared by every generation of one evaluation."""

    steps: int = 50
    cfg: float = 7.5
    scheduler: str = "ddim"


@dataclass(frozen=True)
class Shard:
    """This process's share of the jobs: every `count`-th (prompt, seed) from `rank`, in its own samples file."""

    rank: int = 0
    count: int = 1

    @classmethod
    def from_environment(cls) -> Shard:
        """RANK / WORLD_SIZE as `accelerate launch` and `torchrun` set them; one shard otherwise."""
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))

    @property
    def samples_file(self) -> str:
        return SAMPLES_FILE if self.count == 1 else f"samples.rank{self.rank}-of-{self.count}.jsonl"


def shard_files(out: Path) -> list[Path]:
    """Samples files that shards wrote and that are not merged yet."""
    return sorted(out.glob("samples.rank*-of-*.jsonl"))


def merge_shards(out: Path) -> int:
    """Append the shards' rows not yet in OUT/samples.jsonl, then delete the shard files; returns rows added."""
    path = out / SAMPLES_FILE
    done = {row_key(row) for row in read_rows(path)}
    added = 0
    for shard in shard_files(out):
        for row in read_rows(shard):
            if row_key(row) not in done:
                _append(path, row)
                done.add(row_key(row))
                added += 1
        shard.unlink()
    return added


def row_key(row: dict) -> tuple:
    """What identifies a sample: a rerun skips rows with a key already in the file."""
    return tuple(row.get(field) for field in KEY_FIELDS)


def image_name(row: dict) -> str:
    """A file name for a sample's image, unique per key and safe for any prompt text."""
    digest = hashlib.sha1(json.dumps(row_key(row), ensure_ascii=False).encode()).hexdigest()[:16]
    return f"{IMAGES_DIR}/{digest}.png"


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
        "image": image_name({**base, "method": method}),
        "own_id": prompt.own_id,
        "nearest_id": final.nearest_id,
        "nearest_caption": final.nearest_caption,
        "similarity": final.similarity,
        "nl2": final.nl2,
        "own": own,
        "norm_first": norms[0] if norms else None,
        "norm_mean": sum(norms) / len(norms) if norms else None,
        "fired_steps": [step.index for step in trajectory.steps if step.active],
        "transition_step": trajectory.transition_step,
        "transition_fallback": any(step.fallback for step in trajectory.steps),
        "seconds": trace.run.seconds,
        "warnings": trace.run.warnings,
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
    shard: Shard = Shard(),
) -> int:
    """Sample every (prompt, seed, method) of this shard not yet in OUT; returns the number of rows written.

    Each Generation yields a baseline and a mitigated image from the same x_T: the baseline is recorded once per
    (prompt, seed) as method "baseline", the mitigated image under the method's name. `seconds` is the wall time of
    the Generation that made the row (both trajectories, batched). Each image is saved as OUT/images/KEY.png so
    that the summary can score it with a descriptor independent of the one guidance followed.
    """
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    path = out / shard.samples_file
    done = {row_key(row) for file in [out / SAMPLES_FILE, *shard_files(out)] for row in read_rows(file)}
    mitigations = [method for method in methods if method != "baseline"]
    jobs = [(prompt, seed) for prompt in prompts for seed in seeds][shard.rank :: shard.count]
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
            generation = Generation(backend, request, policy, monitor, method)
            trace = generation.run()
            outputs = [("baseline", "baseline")] if need_baseline else []
            outputs += [(method, "mitigated")] if method != "baseline" else []
            for name, trajectory in outputs:
                row = sample_row(getattr(trace, trajectory), trace, prompt, base, name)
                Image.fromarray(generation.images[trajectory]).save(out / row["image"])
                _append(path, row)
                done.add(row_key(row))
            need_baseline = False
            written += len(outputs)
    return written
