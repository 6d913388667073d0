"""Group near-twin emoji into families so a split never puts one twin on each side (docs/decisions.md §10)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SHAPE_TWIN_COSINE = 0.95
MAX_FAMILY_SIZE = 40


def shape_descriptor(images: np.ndarray) -> np.ndarray:
    """Grey level, mean removed, unit norm: a colour-blind shape code whose cosine finds recoloured twins."""
    grey = images.astype(np.float64).mean(axis=-1).reshape(len(images), -1)
    grey -= grey.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(grey, axis=1, keepdims=True)
    return grey / np.maximum(norms, 1e-12)


class _DisjointSets:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int, max_size: int | None = None) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b or (max_size and self.size[root_a] + self.size[root_b] > max_size):
            return
        if root_a > root_b:
            root_a, root_b = root_b, root_a
        self.parent[root_b] = root_a
        self.size[root_a] += self.size[root_b]


def assign_families(
    name_keys: Sequence[str],
    images: np.ndarray,
    twin_cosine: float = SHAPE_TWIN_COSINE,
    max_size: int = MAX_FAMILY_SIZE,
) -> list[int]:
    """Family index per emoji: same name key, or shape cosine ≥ `twin_cosine` (most similar pairs first, capped)."""
    sets = _DisjointSets(len(name_keys))
    first_with_key: dict[str, int] = {}
    for index, key in enumerate(name_keys):
        sets.union(first_with_key.setdefault(key, index), index)
    descriptor = shape_descriptor(images)
    cosine = descriptor @ descriptor.T
    rows, cols = np.nonzero(np.triu(cosine >= twin_cosine, k=1))
    for order in np.argsort(-cosine[rows, cols], kind="stable"):
        sets.union(int(rows[order]), int(cols[order]), max_size)
    roots = [sets.find(i) for i in range(len(name_keys))]
    family_of_root = {root: family for family, root in enumerate(dict.fromkeys(roots))}
    return [family_of_root[root] for root in roots]


MIRROR_TWIN_MAE = 0.035  # mean |x − y| on the 0–1 scale
MIRROR_GAIN = 0.02


def mirror_twins(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Rows of `queries` whose left–right mirror image is a near copy of some key (mean |x − y| ≤ 0.035 and at least
    0.02 closer than unmirrored): the "facing right" variants and moon phases that the name rules do not join."""
    flat_keys = keys.reshape(len(keys), -1).astype(np.float32) / 255
    rows = []
    for row, image in enumerate(queries):
        plain = np.abs(flat_keys - image.reshape(1, -1).astype(np.float32) / 255).mean(1)
        mirrored = np.abs(flat_keys - image[:, ::-1].reshape(1, -1).astype(np.float32) / 255).mean(1)
        best = int(mirrored.argmin())
        if mirrored[best] <= MIRROR_TWIN_MAE and mirrored[best] + MIRROR_GAIN <= plain[best]:
            rows.append(row)
    return np.array(rows, dtype=np.int64)
