"""The same run through the CLI's engine call, the UI's streamed frames, and the served app via gradio_client: the
demo's default model and its first example (prompt, seed and method), at the page's default settings.

Run: python -m benchmarks.ui_streaming [--rounds 3] → benchmarks/ui_streaming.md (ratios from one interleaved run)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import gradio as gr
import torch
from gradio_client import Client

from memdemo.bench import interleaved_medians
from memdemo.generate import write_outputs
from memdemo.sampling import Generation
from memdemo.ui.layout import build_demo, example_method, load_examples
from memdemo.ui.live import LiveRun
from memdemo.ui.models import ModelRegistry
from memdemo.ui.settings import RunSettings, api_arguments

HERE = Path(__file__).resolve().parent
MODEL = "emojimem-v2-ddpm"
TARGET = 1.10  # served app over CLI (issue 14)
SERVED = "served app through gradio_client (websocket, files)"


def first_example() -> RunSettings:
    card = load_examples()
    example = card["examples"][0]
    return RunSettings(prompt=example["prompt"], seed=example["seed"], method=example_method(card, example))


def plot_seconds(live: LiveRun, repeats: int = 5) -> float:
    """Median seconds to draw both matplotlib panels of a finished run and have gr.Plot encode them as PNG: what native
    gr.LinePlot (DataFrames drawn in the browser) could save per frame at most."""
    plot = gr.Plot(format="png")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for figure in live._plots():
            plot.postprocess(figure)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=7899)
    args = parser.parse_args()
    settings = first_example()
    arguments = api_arguments(MODEL, {"prompt": settings.prompt, "seed": settings.seed, "method": settings.method})
    registry = ModelRegistry("cpu")
    model = registry.get(MODEL)
    monitor, verdicts = model.judge(settings.similarity)

    def generation() -> Generation:
        return Generation(model.backend, settings.request(), settings.policy(monitor), monitor, settings.method)

    def cli_run() -> None:
        run = generation()
        run.run()
        with tempfile.TemporaryDirectory() as folder:
            write_outputs(run, Path(folder))

    # The page as shipped, and the same page sending only the final frame: the floor that serving alone costs.
    demos = [build_demo(registry, MODEL), build_demo(registry, MODEL, interval=float("inf"))]
    clients = []
    for port, demo in enumerate(demos, start=args.port):
        demo.queue(default_concurrency_limit=1)
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        clients.append(Client(f"http://127.0.0.1:{port}/", verbose=False))
    runs = {
        "CLI: Generation.run() + its outputs (PNGs, trace.json, plot.png)": cli_run,
        "UI frames in process (adaptive frame spacing, plots, previews, bundle)": lambda: list(
            LiveRun(generation(), verdicts).frames()
        ),
        "served app, final frame only (no live frames)": lambda: clients[1].predict(*arguments, api_name="/generate"),
        SERVED: lambda: clients[0].predict(*arguments, api_name="/generate"),
    }
    medians = interleaved_medians(runs, args.rounds)
    for demo in demos:
        demo.close()
    reference = next(iter(medians.values()))
    served = medians[SERVED] / reference
    live = LiveRun(generation(), verdicts)
    frames = list(live.frames())
    per_frame = plot_seconds(live)
    saving = per_frame * len(frames)
    lines = [
        "# UI streaming cost vs the CLI",
        "",
        f"`python -m benchmarks.ui_streaming --rounds {args.rounds}`: the first example, {settings.method}, "
        f"“{settings.prompt}”, seed {settings.seed}, {settings.steps} DDIM steps, {MODEL} on CPU "
        f"({platform.machine()}, {torch.get_num_threads()} threads); median of {args.rounds} interleaved rounds after "
        "a warm-up.",
        f"Target: served ≤ {TARGET:.2f}× the CLI; measured {served:.2f}× ({'met' if served <= TARGET else 'missed'}).",
        "",
        "| path | median s | × CLI |",
        "|---|---|---|",
        *[f"| {name} | {seconds:.2f} | {seconds / reference:.2f} |" for name, seconds in medians.items()],
        "",
        "## Native gr.LinePlot instead of matplotlib PNGs?",
        "",
        f"Both panels cost {per_frame * 1000:.0f} ms a frame to draw and encode as PNG (median of 5), and a run sends "
        f"{len(frames)} frames, so plots drawn in the browser could save at most {saving:.2f} s a run: the served app "
        f"would be {(medians[SERVED] - saving) / reference:.2f}× the CLI at best, against the "
        f"{TARGET:.2f}× target. gr.LinePlot has no shaded step ranges (its parameters: x, y, color, limits, "
        "titles), which the page's plots use to show where a method acted, "
        + (
            "so the switch is a trade-off between the target and that shading."
            if served - saving / reference <= TARGET
            else "and the switch alone cannot meet the target, so the plots stay matplotlib PNGs."
        ),
        "",
    ]
    (HERE / "ui_streaming.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
