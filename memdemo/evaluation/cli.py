"""`python -m memdemo evaluate`: argument parsing and wiring of prompts, methods, run loop and summary; under
`accelerate launch` or `torchrun` each process takes a shard of the prompts and rank 0 merges and summarises."""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from memdemo.backends import MODEL_HELP, SCHEDULERS, load_backend
from memdemo.evaluation.methods import EvaluationError, method_names, parse_methods
from memdemo.evaluation.prompts import PROMPT_SETS, Prompt, load_prompts, prompt_set_name
from memdemo.evaluation.runner import SAMPLES_FILE, Settings, Shard, merge_shards, run_evaluation
from memdemo.evaluation.scoring import PIXEL_INDEX, SCORE_INDEX, CopydetScorer
from memdemo.evaluation.summary import table_markdown, write_summary
from memdemo.guidance import SimilarityMonitor
from memdemo.paths import DEFAULT_GUIDE_INDEX
from memdemo.reference.index import ReferenceIndex

SHARD_WAIT = timedelta(days=2)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register the `evaluate` subcommand."""
    evaluate = commands.add_parser("evaluate", help="copy rates of baseline and mitigations over prompts and seeds")
    evaluate.add_argument("--model", default="emojimem-ddpm", help=MODEL_HELP)
    evaluate.add_argument("--prompts", default="duplicated", help=f"{'|'.join(PROMPT_SETS)}|FILE (one per line)")
    evaluate.add_argument("--limit", type=int, help="take the first N prompts of the set")
    evaluate.add_argument("--seeds", type=int, default=4, help="number of seeds: 0..N-1")
    evaluate.add_argument("--methods", default="amg-main", help=f"comma-separated: {','.join(method_names())}")
    evaluate.add_argument("--cfg", type=float, default=7.5, help="classifier-free guidance scale s0")
    evaluate.add_argument("--steps", type=int, default=50)
    evaluate.add_argument("--scheduler", default="ddim", choices=SCHEDULERS)
    evaluate.add_argument("--index", type=Path, default=DEFAULT_GUIDE_INDEX, help="reference index that guidance uses")
    evaluate.add_argument(
        "--score-index",
        default=str(SCORE_INDEX),
        help="copydet index that scores the saved images (pixel nL2 too), or 'none' (e.g. for SD)",
    )
    evaluate.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    evaluate.add_argument("--threads", type=int, help="torch CPU threads (torch.set_num_threads)")
    evaluate.add_argument("--out", type=Path, required=True, help=f"folder for {SAMPLES_FILE} and results.md/.csv")
    evaluate.add_argument(
        "--from", dest="sources", type=Path, nargs="+", help="summarise the samples of these folders into --out"
    )
    evaluate.add_argument("--summarize-only", action="store_true", help="only rewrite results.md/.csv from samples")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(run=_evaluate)


def _scorer(spec: str) -> CopydetScorer | None:
    """The object-level scorer, or None when switched off."""
    return None if spec.lower() == "none" else CopydetScorer.load(Path(spec))


def _sample(args: argparse.Namespace, methods: list[str], prompts: list[Prompt], shard: Shard) -> None:
    """Run this shard's missing samples."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or (f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else None)
    backend = load_backend(args.model, device)
    monitor = SimilarityMonitor(backend, ReferenceIndex.load(args.index))
    settings = Settings(args.steps, args.cfg, args.scheduler)
    set_name = prompt_set_name(args.prompts)
    progress = not args.quiet and shard.rank == 0
    written = run_evaluation(
        backend, monitor, prompts, set_name, range(args.seeds), methods, args.out, settings, progress, shard
    )
    print(f"shard {shard.rank + 1}/{shard.count}: wrote {written} new rows")


def _evaluate(args: argparse.Namespace) -> None:
    """Run the missing samples (unless --summarize-only), merge shards, then write and print the summary."""
    if not args.summarize_only:
        methods, prompts = parse_methods(args.methods), load_prompts(args.prompts, args.limit)
        if args.seeds < 1:
            raise EvaluationError(f"--seeds must be at least 1, got {args.seeds}")
    scorer = _scorer(args.score_index)
    shard = Shard.from_environment()
    if shard.count > 1:
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", shard.rank)))
        # the barrier waits for the slowest shard, which may sample for hours longer (the default limit is 30 min)
        dist.init_process_group("gloo", timeout=SHARD_WAIT)
    try:
        if not args.summarize_only:
            _sample(args, methods, prompts, shard)
        if shard.count > 1:
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if shard.rank != 0:
        return
    merged = merge_shards(args.out)
    if merged:
        print(f"merged {merged} rows from {shard.count} shards into {args.out / SAMPLES_FILE}")
    pixel_index = None if args.score_index.lower() == "none" else ReferenceIndex.load(PIXEL_INDEX)
    table = write_summary(args.out, args.sources, scorer, pixel_index)
    print("\n".join(table_markdown(table)))
    print(f"wrote {args.out}/results.md and results.csv")
