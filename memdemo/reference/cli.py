"""`python -m memdemo index ...`: build a reference index from a dataset folder and query it with an image."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from memdemo.data.emojimem import EmojiMem
from memdemo.errors import MemdemoError
from memdemo.reference.features import available_features, embed_images
from memdemo.reference.index import IndexEntry, ReferenceIndex
from memdemo.reference.metrics import NL2_COPY_THRESHOLD, cosine


def add_commands(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser("index", help="build and query nearest-training-image indexes")
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION")

    build = actions.add_parser("build", help="index a dataset folder's images with one feature")
    build.add_argument("--images", type=Path, required=True, help="dataset folder (images.npy + metadata.jsonl)")
    build.add_argument("--features", required=True, choices=available_features(), help="feature to index")
    build.add_argument("--split", default="train", choices=("train", "holdout", "all"), help="which images")
    build.add_argument("--out", type=Path, required=True, help="index folder to write")
    build.set_defaults(run=_build)

    query = actions.add_parser("query", help="print the nearest training images of an image file")
    query.add_argument("--index", type=Path, required=True, help="index folder")
    query.add_argument("--image", type=Path, required=True, help="image file (PNG, JPEG, ...)")
    query.add_argument("-k", type=int, default=5, help="neighbours to print")
    query.set_defaults(run=_query)


def _build(args: argparse.Namespace) -> None:
    dataset = EmojiMem.load(args.images)
    ids = dataset.ids(None if args.split == "all" else args.split)
    records = [dataset.records[i] for i in ids]
    entries = [IndexEntry(r.id, r.caption, r.copies, r.emoji) for r in records]
    index = ReferenceIndex.from_images(dataset.images[ids], entries, args.features)
    index.save(args.out)
    print(f"wrote {args.out}: {len(index)} {args.split} images, feature {args.features}, dimension {index.dim}")


def load_query_image(path: Path, size: int) -> np.ndarray:
    """An image file as uint8 (1, size, size, 3): transparency onto white, resized to the index's image size."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGBA")
    except FileNotFoundError as error:
        raise MemdemoError(f"{path} does not exist") from error
    except (UnidentifiedImageError, OSError) as error:
        raise MemdemoError(f"{path} is not an image Pillow can read; pass a PNG or JPEG file") from error
    on_white = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image).convert("RGB")
    if on_white.size != (size, size):
        on_white = on_white.resize((size, size), Image.LANCZOS)
    return np.asarray(on_white, dtype=np.uint8)[None]


def _query(args: argparse.Namespace) -> None:
    index = ReferenceIndex.load(args.index)
    vector = embed_images(index.feature, load_query_image(args.image, index.image_size))
    neighbours = index.search(vector, args.k)
    cosines = cosine(vector[0].astype(np.float64), index.vectors(neighbours.rows[0]).astype(np.float64))
    distance_name = "l2" if index.feature.metric == "l2" else "cosine"
    print(f"rank  id     copies  {distance_name:>8}  cosine  caption")
    for rank, row in enumerate(neighbours.rows[0]):
        entry = index.entries[row]
        print(
            f"{rank + 1:>4}  {entry.id:<5}  {entry.copies:>6}  {neighbours.distances[0, rank]:8.3f}  "
            f"{cosines[rank]:6.3f}  {entry.label} {entry.caption}"
        )
    match = index.match(vector)[0]
    if match.nl2 is not None:
        verdict = "copy" if match.nl2 < NL2_COPY_THRESHOLD else "not a copy"
        print(
            f"nL2 = {match.nl2:.3f} (Eq. 8, α = 0.5, k = 50) → σ = 1 − nL2/2 = {match.similarity:.3f}; "
            f"{verdict} at the AMG paper's CIFAR-10 threshold nL2 < {NL2_COPY_THRESHOLD}"
        )
    print(f"cosine to nearest = {match.cosine:.3f}")
    duplicate = index.duplicate_caption(vector)
    print(f"duplicated caption among the 50 nearest (G_dup rule): {duplicate!r}")
