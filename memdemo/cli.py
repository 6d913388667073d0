"""Command-line entry point: one subcommand group per concern, each registered by its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from memdemo import bench, generate
from memdemo.data import cli as data_cli
from memdemo.errors import MemdemoError
from memdemo.evaluation import cli as evaluation_cli
from memdemo.reference import cli as index_cli
from memdemo.training import cli as train_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m memdemo",
        description="Watch a diffusion model memorize, and watch published mitigations remove it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_cli.add_commands(commands)
    index_cli.add_commands(commands)
    generate.add_commands(commands)
    train_cli.add_commands(commands)
    evaluation_cli.add_commands(commands)
    bench.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except MemdemoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
