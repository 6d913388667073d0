"""Time per image of every guidance method on CPU with the EmojiMem-size UNet, as ratios measured in one run.

Run: python -m benchmarks.guidance_speed [--steps 50 --repeats 3] → writes benchmarks/guidance_speed.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from memdemo.backends import load_backend
from memdemo.guidance import SimilarityMonitor, make_policy
from memdemo.guidance.cfg import classifier_free_guidance
from memdemo.reference import ReferenceIndex
from memdemo.sampling import Generation, Request, initial_noise

HERE = Path(__file__).resolve().parent
PROMPT = "grinning face"


@torch.no_grad()
def one_trajectory(backend, request: Request) -> None:
    """The reference: a single plain CFG trajectory (batch 2 per step), no trace, no monitoring."""
    embeddings = backend.encode_text(["", request.prompt]).embeddings
    scheduler = backend.make_scheduler(request.scheduler)
    scheduler.set_timesteps(request.steps)
    x = initial_noise(backend, request.seed) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        eps_u, eps_c = backend.predict_noise(torch.cat([model_input, model_input]), t, embeddings).chunk(2)
        x = scheduler.step(classifier_free_guidance(eps_u, eps_c, request.cfg), t, x).prev_sample
    backend.decode(x)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "guidance_speed.md")
    args = parser.parse_args()
    backend = load_backend("emojimem-random", "cpu")
    monitor = SimilarityMonitor(backend, ReferenceIndex.load(HERE.parent / "indexes" / "emojimem-pixel"))
    request = Request(PROMPT, steps=args.steps)
    always = {"schedule": "constant", "constant_threshold": -1.0}

    def side_by_side(method: str, with_monitor: bool = True, **options) -> Callable[[], None]:
        def run() -> None:
            policy = make_policy(method, request.cfg, monitor, **options)
            Generation(backend, request, policy, monitor if with_monitor else None).run()

        return run

    runs = {
        "one trajectory, plain CFG (reference loop)": lambda: one_trajectory(backend, request),
        "baseline + mitigated side by side, CFG, no σ monitor": side_by_side("baseline", False),
        "baseline + mitigated side by side, CFG, σ_t of both monitored": side_by_side("baseline"),
        **{
            f"{method} (side by side, monitored)": side_by_side(method) for method in ("stp", "dtp", "og-stp", "og-dtp")
        },
        "amg main: gate every step (an untrained model's σ stays under λ, no term fires)": side_by_side("amg"),
    }
    for terms in (("spe",), ("dup",), ("sim",), ("spe", "dup", "sim")):
        label = "+".join(f"G_{term}" for term in terms)
        runs[f"amg {label} firing on every step"] = side_by_side("amg", terms=terms, **always)
    seconds = interleaved_medians(runs, args.repeats)
    names = list(runs)
    single, cfg = seconds[names[0]], seconds[names[2]]
    rows = [(names[0], single, "–")]
    rows += [(name, seconds[name], f"{seconds[name] / single:.2f}× one") for name in names[1:3]]
    rows += [(name, seconds[name], f"{seconds[name] / cfg:.2f}× CFG") for name in names[3:]]

    report = [
        "# Guidance speed on CPU",
        "",
        f"EmojiMem-size UNet (random weights, same architecture and cost as the trained one), {args.steps} DDIM steps,",
        f"CFG 7.5, prompt “{PROMPT}”, median of {args.repeats} interleaved rounds after a warm-up, measured in one",
        f"run of `python -m benchmarks.guidance_speed` ({platform.machine()}, {torch.get_num_threads()} threads).",
        "",
        "Ratios: to one trajectory (`one`) or to CFG side by side with monitoring (`CFG`).",
        "",
        "| configuration | s per run | ratio |",
        "|---|---|---|",
        *[f"| {name} | {seconds:.2f} | {ratio} |" for name, seconds, ratio in rows],
        "",
    ]
    args.out.write_text("\n".join(report), encoding="utf-8")
    print("\n".join(report))


if __name__ == "__main__":
    main()
