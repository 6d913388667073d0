"""`python -m memdemo generate`: one prompt, baseline and mitigated images, trace.json and plot.png."""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from memdemo.backends import MODEL_HELP, SCHEDULERS, load_backend
from memdemo.guidance import SimilarityMonitor, build_policy, method_spec
from memdemo.guidance.contradictions import ignored_options
from memdemo.guidance.registry import add_method_arguments, method_params_from_args
from memdemo.paths import DEFAULT_GUIDE_INDEX, writable_folder
from memdemo.plots import trace_figure
from memdemo.reference.index import ReferenceIndex
from memdemo.sampling import Generation, Request


def add_commands(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser("generate", help="sample a baseline and a mitigated image from the same seed")
    generate.add_argument("--model", default="emojimem-ddpm", help=MODEL_HELP)
    generate.add_argument("--prompt", required=True, help='text prompt ("" = unconditional)')
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--steps", type=int, default=50)
    generate.add_argument("--cfg", type=float, default=7.5, help="classifier-free guidance scale s0")
    generate.add_argument("--scheduler", default="ddim", choices=SCHEDULERS)
    generate.add_argument(
        "--index",
        type=Path,
        help="reference index (EmojiMem default: indexes/emojimem-copydet-guide; indexes/emojimem-pixel for pixel σ)",
    )
    add_method_arguments(generate, default="amg")
    generate.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    generate.add_argument("--out", type=Path, required=True, help="output folder")
    generate.set_defaults(run=_generate)


def write_outputs(generation: Generation, out: Path) -> None:
    """baseline.png, image.png (mitigated), trace.json and plot.png of a finished generation."""
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(generation.images["baseline"]).save(out / "baseline.png")
    Image.fromarray(generation.images["mitigated"]).save(out / "image.png")
    (out / "trace.json").write_text(generation.trace.to_json() + "\n", encoding="utf-8")
    trace_figure(generation.trace).savefig(out / "plot.png", dpi=110)


def _generate(args: argparse.Namespace) -> None:
    method, params = method_params_from_args(args)
    for note in ignored_options(method, method_spec(method).check(params)):
        print(f"warning: {note}")
    request = Request(args.prompt, args.seed, args.steps, args.cfg, args.scheduler)
    writable_folder(args.out)
    backend = load_backend(args.model, args.device)
    index_path = args.index or (DEFAULT_GUIDE_INDEX if backend.name.startswith("emojimem") else None)
    monitor = SimilarityMonitor(backend, ReferenceIndex.load(index_path)) if index_path else None
    policy = build_policy(method, params, args.cfg, monitor)
    generation = Generation(backend, request, policy, monitor, method, params)
    trace = generation.run()
    write_outputs(generation, args.out)
    for warning in trace.run.warnings:
        print(f"warning: {warning}")
    for name in ("baseline", "mitigated"):
        final = getattr(trace, name).final
        if final.similarity is not None:
            nearest = f"{final.nearest_id} “{final.nearest_caption}”"
            print(f"{name:>9}: nearest training image {nearest}, σ = {final.similarity:.3f}")
    print(f"wrote {args.out}/baseline.png, image.png, trace.json, plot.png in {trace.run.seconds:.1f} s")
