"""The same run through the CLI's engine call, the UI's streamed frames, and the served app via gradio_client.

Run: python -m benchmarks.ui_streaming [--rounds 3] → benchmarks/ui_streaming.md (ratios from one interleaved run)
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch
from gradio_client import Client

from memdemo.bench import interleaved_medians
from memdemo.generate import write_outputs
from memdemo.sampling import Generation
from memdemo.ui.layout import build_demo
from memdemo.ui.live import LiveRun
from memdemo.ui.models import ModelRegistry
from memdemo.ui.settings import RunSettings, api_arguments

HERE = Path(__file__).resolve().parent
MODEL = "emojimem-ddpm"
SETTINGS = RunSettings(prompt="rescue worker's helmet", seed=1)
ARGUMENTS = api_arguments(MODEL, {"prompt": SETTINGS.prompt, "seed": SETTINGS.seed})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=7899)
    args = parser.parse_args()
    registry = ModelRegistry("cpu")
    model = registry.get(MODEL)
    monitor, verdicts = model.judge(SETTINGS.similarity)

    def generation() -> Generation:
        return Generation(model.backend, SETTINGS.request(), SETTINGS.policy(monitor), monitor, SETTINGS.method)

    def cli_run() -> None:
        run = generation()
        run.run()
        with tempfile.TemporaryDirectory() as folder:
            write_outputs(run, Path(folder))

    demo = build_demo(registry, MODEL)
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name="127.0.0.1", server_port=args.port, prevent_thread_lock=True, quiet=True)
    client = Client(f"http://127.0.0.1:{args.port}/", verbose=False)
    runs = {
        "CLI: Generation.run() + its outputs (PNGs, trace.json, plot.png)": cli_run,
        "UI frames in process (adaptive frame spacing, plots, previews, bundle)": lambda: list(
            LiveRun(generation(), verdicts).frames()
        ),
        "served app through gradio_client (websocket, files)": lambda: client.predict(*ARGUMENTS, api_name="/generate"),
    }
    medians = interleaved_medians(runs, args.rounds)
    demo.close()
    reference = next(iter(medians.values()))
    lines = [
        "# UI streaming cost vs the CLI",
        "",
        f"`python -m benchmarks.ui_streaming --rounds {args.rounds}`: AMG main, “{SETTINGS.prompt}”, seed "
        f"{SETTINGS.seed}, {SETTINGS.steps} DDIM steps, {MODEL} on CPU ({platform.machine()}, "
        f"{torch.get_num_threads()} threads); median of {args.rounds} interleaved rounds after a warm-up.",
        "Target: ≤ 1.25×.",
        "",
        "| path | median s | × CLI |",
        "|---|---|---|",
        *[f"| {name} | {seconds:.2f} | {seconds / reference:.2f} |" for name, seconds in medians.items()],
        "",
    ]
    (HERE / "ui_streaming.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
