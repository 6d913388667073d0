"""What glibc malloc tuning (memdemo.allocator.tune_malloc: arenas capped, the mmap threshold fixed) costs in speed:
the page's streamed run of the first example (sampling, plots, previews, bundle) in one worker process per setting,
glibc's defaults among them, driven in interleaved rounds; then each worker's RSS after a heap trim, and its peak.

Run: python -m benchmarks.malloc_tuning [--rounds 5] → benchmarks/malloc_tuning.md (Linux with glibc)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from memdemo.allocator import MALLOC_ARENAS, MMAP_THRESHOLD, glibc
from memdemo.bench import interleaved_medians

HERE = Path(__file__).resolve().parent
# name: (arenas, fixed mmap threshold in bytes); None keeps glibc's default
WORKERS = {
    "glibc defaults": (None, None),
    "1 arena": (1, None),
    "1 arena, mmap threshold fixed at 1 MB": (1, 1 << 20),
    "1 arena, mmap threshold fixed at 512 kB": (1, 512 << 10),
    "1 arena, mmap threshold fixed at 256 kB": (1, 256 << 10),
    "1 arena, mmap threshold fixed at 128 kB": (1, 128 << 10),
}


def process_memory() -> dict[str, float]:
    """This process's RSS and peak RSS in MB after a collection and a heap trim (Linux)."""
    gc.collect()
    glibc().malloc_trim(0)
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def worker(arenas: int | None, mmap_threshold: int | None) -> None:
    """Answer 'run' by running the page's streamed run once (the parent times it) and 'memory' with
    process_memory(), one JSON line each."""
    from benchmarks.ui_streaming import MODEL, first_example
    from memdemo.allocator import tune_malloc
    from memdemo.sampling import Generation
    from memdemo.ui.live import LiveRun
    from memdemo.ui.models import ModelRegistry

    tune_malloc(arenas, mmap_threshold)
    settings = first_example()
    model = ModelRegistry("cpu").get(MODEL)
    monitor, verdicts = model.judge(settings.similarity)
    for line in sys.stdin:
        if line.strip() == "memory":
            print(json.dumps(process_memory()), flush=True)
            continue
        generation = Generation(model.backend, settings.request(), settings.policy(monitor), monitor, settings.method)
        list(LiveRun(generation, verdicts).frames())
        print(json.dumps("done"), flush=True)


def ask(process: subprocess.Popen, command: str) -> object:
    process.stdin.write(command + "\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if glibc() is None:
        raise SystemExit("this benchmark tunes glibc's malloc: it needs Linux with glibc")
    if args.worker:
        return worker(*(json.loads(value) for value in args.worker.split(",")))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    workers = {
        name: subprocess.Popen(
            [sys.executable, "-m", "benchmarks.malloc_tuning", "--worker", ",".join(map(json.dumps, setting))],
            cwd=HERE.parent, env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for name, setting in WORKERS.items()
    }  # fmt: skip
    medians = interleaved_medians({name: (lambda p=p: ask(p, "run")) for name, p in workers.items()}, args.rounds)
    memory = {name: ask(process, "memory") for name, process in workers.items()}
    for process in workers.values():
        process.stdin.close()
        process.wait()
    reference = medians["glibc defaults"]
    lines = [
        "# glibc malloc tuning: speed cost",
        "",
        f"`python -m benchmarks.malloc_tuning --rounds {args.rounds}`: the page's streamed run of the first example "
        "(LiveRun frames) in one worker process per setting, "
        f"median of {args.rounds} interleaved rounds after a warm-up; "
        f"{platform.machine()}, torch threads: {torch.get_num_threads()}, torch {torch.__version__}. `serve()` uses "
        f"{MALLOC_ARENAS} arena and a threshold fixed at {MMAP_THRESHOLD >> 10} kB. The memory the tuning saves shows "
        "with concurrent requests, in [soak.md](soak.md); one run at a time, as here, barely fragments the heap.",
        "",
        "| worker | median s | × defaults | RSS at rest MB | peak RSS MB |",
        "|---|---|---|---|---|",
        *[
            f"| {name} | {seconds:.2f} | {seconds / reference:.3f} | {memory[name]['VmRSS']:.0f} | "
            f"{memory[name]['VmHWM']:.0f} |"
            for name, seconds in medians.items()
        ],
        "",
    ]
    (HERE / "malloc_tuning.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
