"""ReferenceIndex: FAISS nearest-neighbour search over training-image features, with captions and copy counts."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

from memdemo.errors import MemdemoError
from memdemo.reference.features import Feature, embed_images, get_feature
from memdemo.reference.metrics import NL2_K, cosine, most_duplicated_caption, nl2_denominator, pixel_similarity

FORMAT_VERSION = 1
HEADER_FILE = "index.json"
METADATA_FILE = "metadata.jsonl"
FAISS_FILE = "index.npz"
BUILD_COMMAND = "python -m memdemo index build --images assets/emojimem --features FEATURE --out FOLDER"


class IndexFormatError(MemdemoError, ValueError):
    """An index folder that is missing, corrupted, or built for another feature or size."""


@dataclass(frozen=True)
class IndexEntry:
    """One indexed training image: its dataset id, caption and how many times training saw it."""

    id: int
    caption: str
    copies: int = 1
    label: str = ""


@dataclass(frozen=True)
class Neighbours:
    """k nearest per query; `distances` are ℓ2 for l2 features and cosine similarities for cosine features."""

    rows: np.ndarray
    ids: np.ndarray
    distances: np.ndarray
    captions: list[list[str]]
    copies: np.ndarray


@dataclass(frozen=True)
class Match:
    """A query's nearest training image and its similarity σ (Eq. 8 as 1 − nL2/2 for pixels, Eq. 9 for cosine)."""

    row: int
    id: int
    caption: str
    copies: int
    similarity: float
    cosine: float
    nl2: float | None
    nl2_scale: float | None  # α·mean ℓ2 to the k nearest: Eq. 8's denominator, held fixed when differentiating


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ReferenceIndex:
    """Exact (flat) FAISS index of one feature over unique training images; row i ↔ entries[i]."""

    def __init__(
        self, feature: Feature, index: faiss.Index, entries: list[IndexEntry], image_size: int, source_sha256: str
    ) -> None:
        if index.ntotal != len(entries):
            raise IndexFormatError(f"the FAISS index holds {index.ntotal} vectors but there are {len(entries)} entries")
        self.feature = feature
        self.index = index
        self.entries = entries
        self.image_size = image_size
        self.source_sha256 = source_sha256
        self.folder: Path | None = None  # where it was loaded from, so a run can name its index

    @property
    def dim(self) -> int:
        return self.index.d

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_images(
        cls, images: np.ndarray, entries: list[IndexEntry], feature: str | Feature, device: str | torch.device = "cpu"
    ) -> ReferenceIndex:
        """Embed uint8 (N, S, S, 3) images with `feature` on `device` and index them."""
        feature = get_feature(feature) if isinstance(feature, str) else feature
        if len(images) != len(entries):
            raise ValueError(f"{len(images)} images but {len(entries)} entries")
        vectors = embed_images(feature, images, device=device)
        metric = faiss.METRIC_L2 if feature.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        index = faiss.IndexFlat(vectors.shape[1], metric)
        if feature.metric == "cosine":
            faiss.normalize_L2(vectors)
        index.add(vectors)
        entries_json = json.dumps([asdict(e) for e in entries], ensure_ascii=False).encode()
        source = _sha256(np.ascontiguousarray(images).tobytes() + entries_json)
        return cls(feature, index, entries, images.shape[1], source)

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"query vectors have dimension {vectors.shape[1]}; this index has {self.dim}")
        if not np.isfinite(vectors).all():
            raise ValueError("query vectors contain NaN or inf")
        if self.feature.metric == "cosine":
            vectors = vectors.copy()
            faiss.normalize_L2(vectors)
        return vectors

    def search(self, vectors: np.ndarray, k: int = 1) -> Neighbours:
        """The k nearest training images of each query vector, nearest first."""
        k = max(1, min(k, len(self)))
        scores, rows = self.index.search(self._prepare(vectors), k)
        distances = np.sqrt(np.maximum(scores, 0)) if self.feature.metric == "l2" else scores
        ids = np.array([[self.entries[r].id for r in row] for row in rows], dtype=np.int64)
        captions = [[self.entries[r].caption for r in row] for row in rows]
        copies = np.array([[self.entries[r].copies for r in row] for row in rows], dtype=np.int64)
        return Neighbours(rows, ids, distances, captions, copies)

    def vectors(self, rows: np.ndarray | list[int]) -> np.ndarray:
        """Stored feature vectors of the given rows (normalised for cosine features)."""
        return np.stack([self.index.reconstruct(int(row)) for row in np.ravel(rows)])

    def match(self, vectors: np.ndarray, k: int = NL2_K) -> list[Match]:
        """Nearest training image and σ_t per query (nL2 over the k nearest for l2 features)."""
        vectors = np.atleast_2d(vectors)
        neighbours = self.search(vectors, k)
        nearest = self.vectors(neighbours.rows[:, 0])
        cosines = cosine(vectors.astype(np.float64), nearest.astype(np.float64))
        matches = []
        for q in range(len(vectors)):
            row = int(neighbours.rows[q, 0])
            if self.feature.metric == "l2":
                scale = float(nl2_denominator(neighbours.distances[q]))
                nl2 = float(neighbours.distances[q, 0]) / scale
                similarity = float(pixel_similarity(nl2))
            else:
                nl2 = scale = None
                similarity = float(neighbours.distances[q, 0])
            entry = self.entries[row]
            matches.append(Match(row, entry.id, entry.caption, entry.copies, similarity, float(cosines[q]), nl2, scale))
        return matches

    def duplicate_caption(self, vector: np.ndarray, top_k: int = NL2_K, min_count: int | None = None) -> str | None:
        """G_dup's duplicated caption among the top_k neighbours of one query (official AMG rule)."""
        neighbours = self.search(vector, top_k)
        kwargs = {} if min_count is None else {"min_count": min_count}
        return most_duplicated_caption(neighbours.captions[0], neighbours.copies[0], **kwargs)

    def save(self, folder: str | Path) -> None:
        """Write index.json (header), metadata.jsonl and index.npz (the serialised FAISS index)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, index=faiss.serialize_index(self.index))
        (folder / FAISS_FILE).write_bytes(buffer.getvalue())
        lines = (json.dumps(asdict(e), ensure_ascii=False) for e in self.entries)
        (folder / METADATA_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
        header = {
            "format_version": FORMAT_VERSION,
            "feature": self.feature.name,
            "metric": self.feature.metric,
            "dim": self.dim,
            "image_size": self.image_size,
            "count": len(self),
            "source_sha256": self.source_sha256,
            "index_sha256": _sha256(buffer.getvalue()),
        }
        (folder / HEADER_FILE).write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path, feature: str | None = None, dim: int | None = None) -> ReferenceIndex:
        """Load an index folder; `feature` and `dim`, when given, must match what it was built with."""
        folder = Path(folder)
        missing = [name for name in (HEADER_FILE, METADATA_FILE, FAISS_FILE) if not (folder / name).is_file()]
        if missing:
            raise _unusable(folder, f"no complete index at {folder} (missing {', '.join(missing)})")
        try:
            header = json.loads((folder / HEADER_FILE).read_text(encoding="utf-8"))
            version, built_feature, built_dim = header["format_version"], header["feature"], header["dim"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise _unusable(folder, f"{folder / HEADER_FILE} is malformed ({error})") from error
        if version != FORMAT_VERSION:
            raise _unusable(folder, f"{folder} has format {version}, this memdemo reads {FORMAT_VERSION}")
        if feature is not None and feature != built_feature:
            raise IndexFormatError(
                f"{folder} was built with feature {built_feature!r}, but {feature!r} is needed; "
                f"build one with `python -m memdemo index build --features {feature} ...`"
            )
        try:
            built = get_feature(built_feature)
        except KeyError as error:
            raise IndexFormatError(f"{folder} needs a feature that is not available: {error}") from error
        if dim is not None and dim != built_dim:
            raise _unusable(folder, f"{folder} holds {built_dim}-d vectors but {dim}-d are needed (other image size?)")
        payload = (folder / FAISS_FILE).read_bytes()
        if _sha256(payload) != header.get("index_sha256"):
            raise _unusable(folder, f"{folder / FAISS_FILE} is truncated or corrupted (bad checksum)")
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
                index = faiss.deserialize_index(archive["index"])
        except (ValueError, OSError, KeyError, zipfile.BadZipFile, RuntimeError) as error:
            raise _unusable(folder, f"{folder / FAISS_FILE} cannot be read ({error})") from error
        try:
            lines = (folder / METADATA_FILE).read_text(encoding="utf-8").splitlines()
            entries = [IndexEntry(**json.loads(line)) for line in lines if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
            raise _unusable(folder, f"{folder / METADATA_FILE} is malformed ({error})") from error
        if len(entries) != index.ntotal or index.d != built_dim:
            raise _unusable(
                folder, f"{folder} has {index.ntotal} vectors of dimension {index.d} and {len(entries)} metadata rows"
            )
        loaded = cls(built, index, entries, header["image_size"], header["source_sha256"])
        loaded.folder = folder
        return loaded


def _unusable(folder: Path, problem: str) -> IndexFormatError:
    """An error for an index folder that cannot be used, ending with the command that rebuilds it."""
    return IndexFormatError(f"{problem}; rebuild it with `{BUILD_COMMAND.replace('FOLDER', str(folder))}`")
