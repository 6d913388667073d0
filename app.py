"""memdemo's Gradio demo: `python app.py` serves it at http://127.0.0.1:7860 (EmojiMem-DDPM, offline, CPU or GPU)."""

from __future__ import annotations

import argparse
import os
import sys

from memdemo.allocator import tune_malloc

tune_malloc()  # before torch, the models and the server allocate, so the whole heap is laid out under it

from memdemo.backends import MODELS
from memdemo.errors import MemdemoError
from memdemo.ui.layout import CSS, build_demo
from memdemo.ui.models import ModelRegistry
from memdemo.ui.server import serve

DEFAULT_MODEL = os.environ.get("MEMDEMO_MODEL", "emojimem-v2-ddpm")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Watch a diffusion model memorize, and watch mitigations remove it.")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"default model: {', '.join(MODELS)} (env MEMDEMO_MODEL)"
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    registry = ModelRegistry(args.device)
    try:
        print(f"loading {args.model} ...", flush=True)
        registry.get(args.model)
        demo = build_demo(registry, args.model)
    except MemdemoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    serve(demo, registry.concurrency * 2, args.host, args.port, CSS, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
