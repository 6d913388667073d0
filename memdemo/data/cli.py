"""`python -m memdemo data ...`: build the EmojiMem dataset and export its images."""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from memdemo.data.contact_sheet import contact_sheet
from memdemo.data.emojimem import DEFAULT_DIR, SHEET_FILE, DatasetError, EmojiMem, SplitConfig, build_emojimem
from memdemo.paths import writable_folder


def add_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="build the EmojiMem dataset, export its images")
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")

    build = actions.add_parser("build-emojimem", help="render Noto emoji into assets/emojimem (needs the font)")
    build.add_argument("--out", type=Path, default=DEFAULT_DIR, help="output folder (default: assets/emojimem)")
    build.add_argument("--seed", type=int, default=SplitConfig.seed, help="seed of the split and the duplicates")
    build.add_argument("--size", type=int, default=32, choices=(32, 64), help="image side in pixels")
    build.add_argument("--font", type=Path, help="path to NotoColorEmoji.ttf (default: the Debian location)")
    build.add_argument("--holdout-fraction", type=float, default=SplitConfig.holdout_fraction)
    build.add_argument("--duplicated", type=int, default=SplitConfig.duplicated, help="training emoji to duplicate")
    build.add_argument("--copies", type=int, default=SplitConfig.copies, help="copies of each duplicated emoji")
    build.set_defaults(run=_build)

    export = actions.add_parser("export", help="write dataset images as PNG files (e.g. to query an index)")
    export.add_argument("ids", type=int, nargs="+", help="image ids (rows of metadata.jsonl)")
    export.add_argument("--dataset", type=Path, default=DEFAULT_DIR)
    export.add_argument("--out", type=Path, required=True, help="folder for ID.png files")
    export.set_defaults(run=_export)


def _build(args: argparse.Namespace) -> None:
    config = SplitConfig(args.seed, args.holdout_fraction, args.duplicated, args.copies)
    dataset, card = build_emojimem(args.size, config, args.font)
    dataset.save(args.out, card)
    contact_sheet(dataset).save(args.out / SHEET_FILE)
    counts = card["counts"]
    print(
        f"wrote {args.out}: {counts['unique']} unique {args.size}×{args.size} emoji in {counts['families']} families, "
        f"{counts['train']} train ({counts['duplicated']} duplicated ×{args.copies}), {counts['holdout']} holdout"
    )


def _export(args: argparse.Namespace) -> None:
    dataset = EmojiMem.load(args.dataset)
    writable_folder(args.out)
    for image_id in args.ids:
        if not 0 <= image_id < len(dataset.records):
            raise DatasetError(f"id {image_id} is out of range: {args.dataset} has ids 0..{len(dataset.records) - 1}")
        path = args.out / f"{image_id}.png"
        Image.fromarray(dataset.images[image_id]).save(path)
        record = dataset.records[image_id]
        print(f"{path}\t{record.caption}\t{record.split}\tcopies={record.copies}")
