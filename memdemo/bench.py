"""`python -m memdemo bench`: ms per image of every evaluation method and its ratio to plain CFG, measured in one
run with interleaved rounds, so that machine drift hits every method alike (ratios are comparable, absolutes less)."""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from memdemo.backends import MODEL_HELP, Backend, load_backend
from memdemo.evaluation.batch_sampling import sample_cfg
from memdemo.evaluation.methods import EvaluationError, make_method_policy, method_names, parse_methods
from memdemo.guidance import Policy, SimilarityMonitor, build_policy
from memdemo.paths import DEFAULT_GUIDE_INDEX
from memdemo.reference.index import ReferenceIndex
from memdemo.sampling import Generation, Request

# A memorized EmojiMem caption: AMG's gate opens on it, as it would in use.
DEFAULT_PROMPT = "warning"
REFERENCE = "plain CFG, one trajectory"


def one_trajectory(backend: Backend, request: Request) -> None:
    """The reference: a single plain CFG trajectory (batch 2 per step), no trace, no monitoring."""
    sample_cfg(backend, [request.prompt], [request.seed], request.cfg, request.steps, request.scheduler)
    if backend.device.type == "cuda":
        torch.cuda.synchronize()


def median_sample_seconds(backend: Backend, request: Request, repeats: int) -> float:
    """Median wall time of `one_trajectory` over `repeats` runs after a warm-up."""
    one_trajectory(backend, request)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_trajectory(backend, request)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(runs: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median seconds per configuration, running every configuration once per round so machine drift hits all alike."""
    for run in runs.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def method_runs(
    backend: Backend, monitor: SimilarityMonitor, request: Request, methods: list[str]
) -> dict[str, Callable[[], None]]:
    """The reference loop, each method side by side with its baseline, and AMG with its gate forced open."""

    def side_by_side(name: str, make_policy_for_run: Callable[[], Policy]) -> Callable[[], None]:
        return lambda: Generation(backend, request, make_policy_for_run(), monitor, name).run()

    runs = {REFERENCE: lambda: one_trajectory(backend, request)}
    for name in methods:
        runs[name] = side_by_side(name, lambda name=name: make_method_policy(name, request.cfg, monitor))
    always_open = {"schedule": "constant", "threshold": -1.0}
    runs["amg-main, gate open at every step (worst case)"] = side_by_side(
        "amg-main", lambda: build_policy("amg", always_open, request.cfg, monitor)
    )
    return runs


def report(
    model: str, request: Request, seconds: dict[str, float], rounds: int, index: Path, device: torch.device
) -> str:
    """Markdown: per method, ms per image and the ratio to plain CFG run the same way (side by side, monitored)."""
    cpu = f"CPU, {torch.get_num_threads()} threads"
    device = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    cfg = seconds["baseline"]
    lines = [
        f"# Speed of every method: {model}",
        "",
        f"`python -m memdemo bench --model {model}`: {request.steps} {request.scheduler.upper()} steps, CFG "
        f"{request.cfg}, prompt “{request.prompt}”, index `{index.name}`, median of {rounds} interleaved rounds after "
        f"a warm-up, one run ({platform.machine()}, {device}, torch {torch.__version__}).",
        "",
        "Every method runs as the demo runs it: the mitigated trajectory beside its CFG baseline from the same x_T, "
        "batched, σ_t of both monitored; ms per image = that run's time / 2. The ratio is to the `baseline` row "
        f"(plain CFG run the same way). `{REFERENCE}` is a bare diffusers-style loop without monitoring.",
        "",
        "| method | ms per image | ratio to CFG |",
        "|---|---|---|",
    ]
    for name, value in seconds.items():
        per_image = value * 1000 if name == REFERENCE else value * 1000 / 2
        ratio = "–" if name == REFERENCE else f"{value / cfg:.2f}×"
        lines.append(f"| {name} | {per_image:.0f} | {ratio} |")
    return "\n".join([*lines, ""])


def add_commands(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="ms per image of every method and the ratio to plain CFG")
    bench.add_argument("--model", default="emojimem-ddpm", help=MODEL_HELP)
    bench.add_argument("--methods", default=",".join(method_names()), help="comma-separated evaluation methods")
    bench.add_argument("--prompt", default=DEFAULT_PROMPT)
    bench.add_argument("--steps", type=int, default=50)
    bench.add_argument("--cfg", type=float, default=7.5)
    bench.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    bench.add_argument("--index", type=Path, default=DEFAULT_GUIDE_INDEX, help="reference index AMG and σ_t use")
    bench.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    bench.add_argument("--out", type=Path, help="write the Markdown table here too")
    bench.set_defaults(run=_bench)


def _bench(args: argparse.Namespace) -> None:
    if args.rounds < 1:
        raise EvaluationError(f"--rounds must be at least 1, got {args.rounds}")
    methods = parse_methods(args.methods)
    if "baseline" not in methods:
        methods.insert(0, "baseline")
    backend = load_backend(args.model, args.device)
    monitor = SimilarityMonitor(backend, ReferenceIndex.load(args.index))
    request = Request(args.prompt, seed=0, steps=args.steps, cfg=args.cfg)
    seconds = interleaved_medians(method_runs(backend, monitor, request, methods), args.rounds)
    text = report(args.model, request, seconds, args.rounds, args.index, torch.device(backend.device))
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
