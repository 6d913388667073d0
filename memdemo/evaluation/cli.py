"""`python -m memdemo evaluate`: argument parsing and wiring of prompts, methods, run loop and summary."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from memdemo.backends import MODELS, SCHEDULERS, load_backend
from memdemo.evaluation.methods import METHOD_NAMES, EvaluationError, parse_methods
from memdemo.evaluation.prompts import PROMPT_SETS, load_prompts, prompt_set_name
from memdemo.evaluation.runner import SAMPLES_FILE, Settings, run_evaluation
from memdemo.evaluation.summary import to_markdown, write_summary
from memdemo.generate import DEFAULT_INDEX
from memdemo.guidance import SimilarityMonitor
from memdemo.reference.index import ReferenceIndex


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register the `evaluate` subcommand."""
    evaluate = commands.add_parser("evaluate", help="copy rates of baseline and mitigations over prompts and seeds")
    evaluate.add_argument("--model", default="emojimem-ddpm", help=f"{', '.join(MODELS)}, or an SD repo id / folder")
    evaluate.add_argument("--prompts", default="duplicated", help=f"{'|'.join(PROMPT_SETS)}|FILE (one per line)")
    evaluate.add_argument("--limit", type=int, help="take the first N prompts of the set")
    evaluate.add_argument("--seeds", type=int, default=4, help="number of seeds: 0..N-1")
    evaluate.add_argument("--methods", default="amg-main", help=f"comma-separated: {','.join(METHOD_NAMES)}")
    evaluate.add_argument("--cfg", type=float, default=7.5, help="classifier-free guidance scale s0")
    evaluate.add_argument("--steps", type=int, default=50)
    evaluate.add_argument("--scheduler", default="ddim", choices=SCHEDULERS)
    evaluate.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="reference index for nearest images")
    evaluate.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    evaluate.add_argument("--threads", type=int, help="torch CPU threads (torch.set_num_threads)")
    evaluate.add_argument("--out", type=Path, required=True, help=f"folder for {SAMPLES_FILE} and results.md/.csv")
    evaluate.add_argument("--summarize-only", action="store_true", help="only rewrite results.md/.csv from samples")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(run=_evaluate)


def _evaluate(args: argparse.Namespace) -> None:
    """Run the missing samples (unless --summarize-only), then write and print the summary."""
    if not args.summarize_only:
        methods = parse_methods(args.methods)
        prompts = load_prompts(args.prompts, args.limit)
        if args.seeds < 1:
            raise EvaluationError(f"--seeds must be at least 1, got {args.seeds}")
        if args.threads:
            torch.set_num_threads(args.threads)
        backend = load_backend(args.model, args.device)
        monitor = SimilarityMonitor(backend, ReferenceIndex.load(args.index))
        settings = Settings(args.steps, args.cfg, args.scheduler)
        set_name = prompt_set_name(args.prompts)
        written = run_evaluation(
            backend, monitor, prompts, set_name, range(args.seeds), methods, args.out, settings, not args.quiet
        )
        print(f"wrote {written} new rows to {args.out / SAMPLES_FILE}")
    table = write_summary(args.out)
    print(to_markdown(table))
    print(f"wrote {args.out}/results.md and results.csv")
