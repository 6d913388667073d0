"""`python -m memdemo index ...`: build a reference index from an EmojiMem dataset or a folder of your own images, and
query it with an image."""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from memdemo.data.emojimem import BUILD_COMMAND as BUILD_EMOJIMEM
from memdemo.data.emojimem import IMAGES_FILE, EmojiMem
from memdemo.errors import MemdemoError
from memdemo.reference.features import HUB_ENCODERS, available_features, embed_images
from memdemo.reference.index import IndexEntry, ReferenceIndex
from memdemo.reference.metrics import NL2_COPY_THRESHOLD, cosine

CAPTIONS_FILE = "captions.jsonl"
FOLDER_IMAGE_SIZE = 224


def add_commands(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser("index", help="build and query nearest-training-image indexes")
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION")

    build = actions.add_parser("build", help="index an EmojiMem dataset or a folder of images with one feature")
    build.add_argument(
        "--images",
        type=Path,
        required=True,
        help="an EmojiMem dataset folder (images.npy + metadata.jsonl), or a folder of image files (searched "
        f'recursively) with captions from {CAPTIONS_FILE} lines {{"file_name": ..., "caption": ...}} or from '
        "same-name .txt files, else the file name without its extension",
    )
    build.add_argument(
        "--features",
        required=True,
        choices=available_features(),
        help=f"feature to index; {' and '.join(HUB_ENCODERS)} download a pretrained encoder on first use",
    )
    build.add_argument("--split", default="train", choices=("train", "holdout", "all"), help="EmojiMem: which images")
    build.add_argument(
        "--size",
        type=int,
        default=FOLDER_IMAGE_SIZE,
        help="image folder: side of the centre-cropped square each image is stored at (use the model's image size, "
        "e.g. 512 for SD, with --features pixel)",
    )
    build.add_argument("--out", type=Path, required=True, help="index folder to write")
    build.set_defaults(run=_build)

    query = actions.add_parser("query", help="print the nearest training images of an image file")
    query.add_argument("--index", type=Path, required=True, help="index folder")
    query.add_argument("--image", type=Path, required=True, help="image file (PNG, JPEG, ...)")
    query.add_argument("-k", type=int, default=5, help="neighbours to print")
    query.set_defaults(run=_query)


def _build(args: argparse.Namespace) -> None:
    folder = Path(args.images)
    if folder.is_dir() and not (folder / IMAGES_FILE).is_file():
        _build_from_image_folder(args)
        return
    if not folder.exists():
        raise MemdemoError(
            f"{folder} does not exist; pass a folder of images, or an EmojiMem dataset folder "
            f"(build one with `{BUILD_EMOJIMEM} --out {folder}`)"
        )
    dataset = EmojiMem.load(folder)
    ids = dataset.ids(None if args.split == "all" else args.split)
    records = [dataset.records[i] for i in ids]
    entries = [IndexEntry(r.id, r.caption, r.copies, r.emoji) for r in records]
    index = ReferenceIndex.from_images(dataset.images[ids], entries, args.features)
    index.save(args.out)
    print(f"wrote {args.out}: {len(index)} {args.split} images, feature {args.features}, dimension {index.dim}")


@dataclass
class ImageFolder:
    """A folder's readable images as uint8 (N, S, S, 3), unique by content, with captions and copy counts."""

    images: np.ndarray
    entries: list[IndexEntry]
    skipped: list[Path]  # files Pillow cannot read as images (caption sidecars are not counted)
    duplicates: int  # files whose pixels equal an earlier file's: merged into that entry's copy count


def _sidecar_captions(folder: Path) -> dict[str, str]:
    """captions.jsonl: one {"file_name" (or "file"): path relative to the folder, "caption" (or "text"): ...} a line."""
    path = folder / CAPTIONS_FILE
    if not path.is_file():
        return {}
    captions = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name = row.get("file_name", row.get("file"))
            caption = row.get("caption", row.get("text"))
        except (json.JSONDecodeError, AttributeError) as error:
            raise MemdemoError(f"{path}, line {number}: not a JSON object ({error})") from error
        if not isinstance(name, str) or not isinstance(caption, str):
            raise MemdemoError(f'{path}, line {number}: needs "file_name" and "caption" strings')
        captions[Path(name).as_posix()] = caption.strip()
    return captions


def _caption(path: Path, relative: str, sidecar: dict[str, str]) -> str:
    """The sidecar caption, else the same-name .txt file's text, else the file name without its extension."""
    if relative in sidecar:
        return sidecar[relative]
    text_file = path.with_suffix(".txt")
    if text_file.is_file():
        text = text_file.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            return text
    return path.stem


def _square(image: Image.Image, size: int) -> np.ndarray:
    """Transparency onto white, centre-cropped to a square, resized to size × size; uint8 (size, size, 3)."""
    image = image.convert("RGBA")
    on_white = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image).convert("RGB")
    side = min(on_white.size)
    left, top = (on_white.width - side) // 2, (on_white.height - side) // 2
    square = on_white.crop((left, top, left + side, top + side))
    if square.size != (size, size):
        square = square.resize((size, size), Image.LANCZOS)
    return np.asarray(square, dtype=np.uint8)


def read_image(path: Path, size: int, max_pixels: int | None = None, name: str | None = None) -> np.ndarray:
    """An image file as uint8 (size, size, 3), prepared as indexes store images (transparency onto white,
    centre-cropped, resized), or a MemdemoError that names the file (as `name`), the problem and the fix."""
    name = name or str(path)
    try:
        with Image.open(path) as opened:
            if max_pixels is not None and opened.width * opened.height > max_pixels:
                raise MemdemoError(
                    f"{name} is {opened.width}×{opened.height} pixels; images are limited to {max_pixels:,} pixels, "
                    "so resize it first"
                )
            return _square(opened, size)
    except FileNotFoundError as error:
        raise MemdemoError(f"{name} does not exist") from error
    except Image.DecompressionBombError as error:
        limit = max_pixels or 2 * (Image.MAX_IMAGE_PIXELS or 0)  # Pillow refuses twice its warning size
        raise MemdemoError(f"{name} is too large: images are limited to {limit:,} pixels; resize it first") from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise MemdemoError(
            f"{name} is not an image Pillow can read; use a PNG, JPEG or WebP image file instead"
        ) from error


def image_set(images: list[np.ndarray], labels: list[str], captions: list[str], skipped: list[Path]) -> ImageFolder:
    """Images with their labels and captions, unique by content: a file whose pixels equal an earlier one's adds a
    copy to that entry."""
    unique, entries, rows, duplicates = [], [], {}, 0
    for pixels, label, caption in zip(images, labels, captions, strict=True):
        digest = hashlib.sha256(pixels.tobytes()).hexdigest()
        if digest in rows:
            entry = entries[rows[digest]]
            entries[rows[digest]] = replace(entry, copies=entry.copies + 1)
            duplicates += 1
            continue
        rows[digest] = len(entries)
        entries.append(IndexEntry(len(entries), caption, 1, label))
        unique.append(pixels)
    return ImageFolder(np.stack(unique), entries, skipped, duplicates)


def load_image_folder(folder: Path, size: int = FOLDER_IMAGE_SIZE) -> ImageFolder:
    """Every file under `folder` that Pillow reads as an image, in path order; any other file is skipped and
    counted (caption sidecars excepted). Fails when not one image is readable."""
    if size < 1:
        raise MemdemoError(f"--size must be at least 1, got {size}")
    sidecar = _sidecar_captions(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    stems = {p.with_suffix("") for p in files if p.suffix.lower() != ".txt"}
    images, labels, captions, skipped = [], [], [], []
    for path in files:
        if path.name == CAPTIONS_FILE or (path.suffix.lower() == ".txt" and path.with_suffix("") in stems):
            continue  # a caption sidecar
        try:
            images.append(read_image(path, size))
        except MemdemoError:
            skipped.append(path)
            continue
        relative = path.relative_to(folder).as_posix()
        labels.append(relative)
        captions.append(_caption(path, relative, sidecar))
    if not images:
        found = f"; {len(skipped)} other files were skipped" if skipped else ""
        raise MemdemoError(
            f"{folder} holds no images Pillow can read (PNG, JPEG, WebP, ...){found}; pass a folder of image files"
        )
    return image_set(images, labels, captions, skipped)


def _build_from_image_folder(args: argparse.Namespace) -> None:
    folder = load_image_folder(Path(args.images), args.size)
    if folder.skipped:
        names = ", ".join(str(p.relative_to(args.images)) for p in folder.skipped[:5])
        more = f" and {len(folder.skipped) - 5} more" if len(folder.skipped) > 5 else ""
        print(f"skipped {len(folder.skipped)} files that are not images: {names}{more}")
    index = ReferenceIndex.from_images(folder.images, folder.entries, args.features)
    index.save(args.out)
    merged = f" ({folder.duplicates} duplicate files counted as copies)" if folder.duplicates else ""
    print(
        f"wrote {args.out}: {len(index)} images{merged}, {args.size}×{args.size} px, feature {args.features}, "
        f"dimension {index.dim}"
    )


MAX_QUERY_PIXELS = 16_000_000


def load_query_image(path: Path, size: int) -> np.ndarray:
    """An image file as uint8 (1, size, size, 3), prepared as indexed folder images are."""
    return read_image(path, size, MAX_QUERY_PIXELS)[None]


def _query(args: argparse.Namespace) -> None:
    if args.k < 1:
        raise MemdemoError(f"-k must be at least 1 (the number of neighbours to print), got {args.k}")
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
