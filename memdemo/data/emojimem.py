"""The EmojiMem dataset: Noto emoji with their Unicode names, split by family, some duplicated on purpose."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from memdemo.data.catalog import MAX_EMOJI_VERSION, emojimem_catalog
from memdemo.data.families import SHAPE_TWIN_COSINE, assign_families
from memdemo.data.render import EmojiRenderer
from memdemo.errors import MemdemoError
from memdemo.paths import assets_dir

IMAGES_FILE = "images.npy"
METADATA_FILE = "metadata.jsonl"
CARD_FILE = "dataset.json"
SHEET_FILE = "contact_sheet.png"
DEFAULT_DIR = assets_dir(check=False) / "emojimem"
BUILD_COMMAND = "python -m memdemo data build-emojimem"


@dataclass(frozen=True)
class SplitConfig:
    """How EmojiMem is split: a holdout by family, and a few training emoji duplicated many times."""

    seed: int = 0
    holdout_fraction: float = 0.12
    duplicated: int = 100
    copies: int = 32


@dataclass(frozen=True)
class EmojiRecord:
    """One unique image of EmojiMem; `copies` is how often it appears in training (0 for the holdout)."""

    id: int
    emoji: str
    caption: str
    split: str
    copies: int
    family: int
    version: float


class DatasetError(MemdemoError, ValueError):
    """A dataset folder that is missing, incomplete or inconsistent."""


@dataclass
class EmojiMem:
    """Images (N, S, S, 3) uint8 and one record per image, row i ↔ record with id i."""

    images: np.ndarray
    records: list[EmojiRecord]

    def ids(self, split: str | None = None) -> list[int]:
        """Ids of one split ('train' or 'holdout'), or all."""
        return [r.id for r in self.records if split is None or r.split == split]

    @property
    def captions(self) -> list[str]:
        return [r.caption for r in self.records]

    def save(self, folder: Path, card: dict) -> None:
        """Write images.npy, metadata.jsonl and dataset.json (no pickle anywhere)."""
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / IMAGES_FILE, self.images, allow_pickle=False)
        lines = (json.dumps(asdict(r), ensure_ascii=False) for r in self.records)
        (folder / METADATA_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path = DEFAULT_DIR) -> EmojiMem:
        """Load a dataset folder, checking that images and metadata agree."""
        folder = Path(folder)
        missing = [name for name in (IMAGES_FILE, METADATA_FILE) if not (folder / name).is_file()]
        if missing:
            raise DatasetError(f"{folder} lacks {', '.join(missing)}; build it with `{BUILD_COMMAND} --out {folder}`.")
        try:
            images = np.load(folder / IMAGES_FILE, allow_pickle=False)
        except (ValueError, EOFError, OSError) as error:
            raise DatasetError(f"{folder / IMAGES_FILE} is not a readable NumPy array ({error}); rebuild it") from error
        try:
            lines = (folder / METADATA_FILE).read_text(encoding="utf-8").splitlines()
            records = [EmojiRecord(**json.loads(line)) for line in lines if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
            raise DatasetError(f"{folder / METADATA_FILE} is malformed ({error}); rebuild it.") from error
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
            raise DatasetError(f"{folder / IMAGES_FILE} must be uint8 N×S×S×3, got {images.dtype} {images.shape}.")
        if len(records) != len(images) or [r.id for r in records] != list(range(len(images))):
            raise DatasetError(
                f"{folder}: {len(images)} images but {len(records)} metadata rows with ids not 0..N-1; rebuild it."
            )
        return cls(images, records)


def split_families(families: list[int], config: SplitConfig) -> tuple[list[str], list[int]]:
    """Seeded split: whole families go to the holdout until it holds `holdout_fraction`; then pick duplicates."""
    rng = np.random.default_rng(config.seed)
    members: dict[int, list[int]] = {}
    for index, family in enumerate(families):
        members.setdefault(family, []).append(index)
    target = round(config.holdout_fraction * len(families))
    splits = ["train"] * len(families)
    held = 0
    for family in rng.permutation(sorted(members)):
        if held + len(members[family]) <= target:
            for index in members[family]:
                splits[index] = "holdout"
            held += len(members[family])
    train = [index for index, split in enumerate(splits) if split == "train"]
    if config.duplicated > len(train):
        raise ValueError(f"cannot duplicate {config.duplicated} of only {len(train)} training emoji")
    copies = [1 if split == "train" else 0 for split in splits]
    for index in rng.choice(train, size=config.duplicated, replace=False):
        copies[int(index)] = config.copies
    return splits, copies


def build_emojimem(
    size: int = 32, config: SplitConfig = SplitConfig(), font: str | Path | None = None
) -> tuple[EmojiMem, dict]:
    """Render the catalogue, group twins into families, split and mark duplicates; returns the dataset and its card."""
    renderer = EmojiRenderer(font)
    rendered = emojimem_catalog()
    images = np.stack([renderer.render(entry.emoji, size) for entry in rendered])
    # Some sequences fall back to another sequence's glyph (e.g. "family: adult, child"); keep each image once.
    first = sorted(np.unique(images.reshape(len(images), -1), axis=0, return_index=True)[1])
    catalog, images = [rendered[i] for i in first], images[first]
    families = assign_families([entry.name_family for entry in catalog], images)
    splits, copies = split_families(families, config)
    records = [
        EmojiRecord(i, entry.emoji, entry.caption, splits[i], copies[i], families[i], entry.version)
        for i, entry in enumerate(catalog)
    ]
    card = {
        "name": "EmojiMem",
        "image_size": size,
        "split": asdict(config),
        "counts": {
            "unique": len(records),
            "train": splits.count("train"),
            "holdout": splits.count("holdout"),
            "duplicated": sum(c > 1 for c in copies),
            "training_entries": sum(copies),
            "families": len(set(families)),
            "dropped_identical_renders": len(rendered) - len(catalog),
        },
        "source": {
            "font": renderer.font_path.name,
            "font_sha256": hashlib.sha256(renderer.font_path.read_bytes()).hexdigest(),
            "emoji_package": importlib.metadata.version("emoji"),
            "pillow": importlib.metadata.version("pillow"),
            "max_emoji_version": MAX_EMOJI_VERSION,
            "family_shape_cosine": SHAPE_TWIN_COSINE,
        },
        "command": f"{BUILD_COMMAND} --seed {config.seed} --size {size}",
    }
    return EmojiMem(images, records), card
