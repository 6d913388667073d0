"""`python -m memdemo generate`: one prompt, baseline and mitigated images, trace.json and plot.png."""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from memdemo.backends import MODEL_HELP, SCHEDULERS, load_backend
from memdemo.guidance import METHODS, SimilarityMonitor, make_policy
from memdemo.guidance.amg import AMG_PRESETS, AMG_TERMS
from memdemo.guidance.thresholds import THRESHOLD_SCHEDULES
from memdemo.guidance.transition import DEFAULT_SWITCH_T
from memdemo.plots import trace_figure
from memdemo.reference.index import ReferenceIndex
from memdemo.sampling import Generation, Request

DEFAULT_INDEX = Path(__file__).resolve().parents[1] / "indexes" / "emojimem-copydet-guide"


def add_commands(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser("generate", help="sample a baseline and a mitigated image from the same seed")
    generate.add_argument("--model", default="emojimem-ddpm", help=MODEL_HELP)
    generate.add_argument("--prompt", required=True, help='text prompt ("" = unconditional)')
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--steps", type=int, default=50)
    generate.add_argument("--cfg", type=float, default=7.5, help="classifier-free guidance scale s0")
    generate.add_argument("--scheduler", default="ddim", choices=SCHEDULERS)
    generate.add_argument("--method", default="amg", choices=list(METHODS), help="mitigation to compare")
    generate.add_argument(
        "--index",
        type=Path,
        help="reference index (EmojiMem default: indexes/emojimem-copydet-guide; indexes/emojimem-pixel for pixel σ)",
    )
    amg = generate.add_argument_group("AMG")
    amg.add_argument("--amg-terms", help=f"comma-separated subset of {','.join(AMG_TERMS)} (default: all)")
    amg.add_argument("--amg-preset", default="main", choices=AMG_PRESETS)
    amg.add_argument("--c1", type=float, help="override the despecification constant c1 (Eq. 13)")
    amg.add_argument("--c2", type=float, help="override the deduplication constant c2 (Eq. 15)")
    amg.add_argument("--c3", type=float, help="override the dissimilarity scale c3 (Eq. 17)")
    amg.add_argument("--threshold-schedule", choices=THRESHOLD_SCHEDULES, help="λ_t schedule (default: per preset)")
    amg.add_argument("--threshold", type=float, help="λ for --threshold-schedule constant")
    amg.add_argument("--sim-through-unet", action="store_true", help="differentiate σ through the UNet too")
    transition = generate.add_argument_group("transition point")
    transition.add_argument("--switch-t", type=int, default=DEFAULT_SWITCH_T, help="static switch / DTP fallback t")
    transition.add_argument("--pre-scale", type=float, help="scale before the switch (default 0; −s0 for og-*)")
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
    backend = load_backend(args.model, args.device)
    index_path = args.index or (DEFAULT_INDEX if backend.name.startswith("emojimem") else None)
    monitor = SimilarityMonitor(backend, ReferenceIndex.load(index_path)) if index_path else None
    terms = tuple(term.strip() for term in args.amg_terms.split(",")) if args.amg_terms else None
    policy = make_policy(
        args.method,
        args.cfg,
        monitor,
        amg_preset=args.amg_preset,
        switch_t=args.switch_t,
        pre_scale=args.pre_scale,
        terms=terms,
        c1=args.c1,
        c2=args.c2,
        c3=args.c3,
        schedule=args.threshold_schedule,
        constant_threshold=args.threshold,
        sim_through_unet=args.sim_through_unet or None,
    )
    request = Request(args.prompt, args.seed, args.steps, args.cfg, args.scheduler)
    generation = Generation(backend, request, policy, monitor, args.method)
    trace = generation.run()
    write_outputs(generation, args.out)
    for warning in trace.run["warnings"]:
        print(f"warning: {warning}")
    for name in ("baseline", "mitigated"):
        final = getattr(trace, name).final
        if final.similarity is not None:
            nearest = f"{final.nearest_id} “{final.nearest_caption}”"
            print(f"{name:>9}: nearest training image {nearest}, σ = {final.similarity:.3f}")
    print(f"wrote {args.out}/baseline.png, image.png, trace.json, plot.png in {trace.run['seconds']:.1f} s")
