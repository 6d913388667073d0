"""Where the demo's memory goes over many runs: RSS and the Python heap (tracemalloc) after every run of the first
example, either through the Generate handler's generator (no Gradio) or through the app served on 127.0.0.1 in this
process (so tracemalloc sees the server), and the allocation sites that grew from the end of the warm-up to the last
run.

Run: python -m benchmarks.memory_growth [--runs 100] [--path served] [--trace] → benchmarks/memory_growth-PATH.md, .png
"""

from __future__ import annotations

import argparse
import gc
import socket
import time
import tracemalloc
from pathlib import Path

from gradio_client import Client
from matplotlib.figure import Figure

from memdemo.ui.layout import CSS, build_demo, first_example, load_examples
from memdemo.ui.models import ModelRegistry
from memdemo.ui.server import serve
from memdemo.ui.settings import api_arguments

HERE = Path(__file__).resolve().parent
MODEL = "emojimem-v2-ddpm"  # app.py's default
TOP = 12
TRACE_FRAMES = 8


def rss_mb(pid: str = "self") -> float:
    """Resident set size in MB from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc; this measurement needs Linux")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(steps: int) -> list:
    """The Generate API's arguments for the page's first example (AMG, object-level similarity)."""
    prompt, seed = first_example(load_examples())
    return api_arguments(MODEL, {"prompt": prompt, "seed": seed, "steps": steps})


def handler_runner(steps: int):
    """One run = the Generate handler's generator drained in this thread, as Gradio would call it."""
    demo = build_demo(ModelRegistry("cpu"), MODEL)
    index = next(i for i, fn in demo.fns.items() if fn.api_name == "generate")
    fn, values = demo.fns[index], iter(request(steps))
    inputs = [None if block.skip_api else next(values) for block in fn.inputs]
    return lambda: list(fn.fn(*inputs)), demo


def served_runner(steps: int):
    """One run = a gradio_client call to the app served in this process, as app.py serves it."""
    demo = build_demo(ModelRegistry("cpu"), MODEL)
    port = free_port()
    serve(demo, 2, "127.0.0.1", port, CSS, prevent_thread_lock=True, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    arguments = request(steps)
    return lambda: client.predict(*arguments, api_name="/generate"), demo


def top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> list[str]:
    """The allocation sites (innermost project or library frame) that grew most, as table rows."""
    rows = []
    for stat in after.compare_to(before, "traceback")[:TOP]:
        frames = [f"{Path(frame.filename).name}:{frame.lineno}" for frame in stat.traceback[-4:]]
        rows.append(f"| {stat.size_diff / 1024:+.0f} | {stat.count_diff:+d} | {' ← '.join(reversed(frames))} |")
    return rows


def plot(curves: dict[str, list[float]], warmup: int, path: Path) -> None:
    figure = Figure(figsize=(7, 3.5))
    axes = figure.subplots()
    for label, values in curves.items():
        axes.plot(range(1, len(values) + 1), values, label=label)
    axes.axvline(warmup, color="grey", linestyle=":", label="end of warm-up")
    axes.set_xlabel("run")
    axes.set_ylabel("MB (change since run 1)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--path", choices=("handler", "served"), default="served")
    parser.add_argument(
        "--trace", action="store_true", help="trace the Python heap after the warm-up (slower; RSS includes it)"
    )
    args = parser.parse_args()
    run, demo = (served_runner if args.path == "served" else handler_runner)(args.steps)
    rss, heap, seconds, snapshot = [], [], time.perf_counter(), None
    for index in range(1, args.runs + 1):
        run()
        gc.collect()
        rss.append(rss_mb())
        heap.append(tracemalloc.get_traced_memory()[0] / 2**20)
        if args.trace and index == args.warmup:  # from here on, only what later runs allocate and keep is traced
            tracemalloc.start(TRACE_FRAMES)
            snapshot = tracemalloc.take_snapshot()
        print(f"run {index}: RSS {rss[-1]:.1f} MB, Python heap {heap[-1]:.1f} MB", flush=True)
    seconds = time.perf_counter() - seconds
    rows = top_growth(snapshot, tracemalloc.take_snapshot()) if snapshot is not None else []
    demo.close()
    name = f"memory_growth-{args.path}"
    curves = {"RSS": [value - rss[0] for value in rss]}
    if args.trace:
        curves["Python heap allocated after the warm-up (tracemalloc)"] = heap
    plot(curves, args.warmup, HERE / f"{name}.png")
    after = rss[args.warmup - 1]
    per_run = (rss[-1] - after) / (args.runs - args.warmup)
    lines = [
        f"# Memory over {args.runs} runs ({args.path})",
        "",
        f"`python -m benchmarks.memory_growth --runs {args.runs} --warmup {args.warmup} --steps {args.steps} "
        f"--path {args.path}{' --trace' if args.trace else ''}`: {MODEL}, the first example, AMG, {args.steps} DDIM "
        f"steps, CPU, {seconds / 60:.1f} min.",
        "",
        f"![RSS per run]({name}.png)",
        "",
        "| | MB |",
        "|---|---|",
        f"| RSS after run 1 | {rss[0]:.1f} |",
        f"| RSS after the warm-up (run {args.warmup}) | {after:.1f} |",
        f"| RSS after run {args.runs} | {rss[-1]:.1f} |",
        f"| growth after the warm-up | {rss[-1] - after:+.1f} ({per_run:+.3f} a run) |",
    ]
    if args.trace:
        lines += [f"| Python heap allocated after the warm-up and still live | {heap[-1]:+.1f} |", ""]
        lines += ["Sites that grew most after the warm-up (KiB, blocks, innermost frame first):", ""]
        lines += ["| KiB | blocks | where |", "|---|---|---|", *rows]
    (HERE / f"{name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
