"""Evaluation method names → guidance policies; amg-* names pick an AMG preset and a subset of its terms."""

from __future__ import annotations

from memdemo.errors import MemdemoError
from memdemo.guidance import Policy, SimilarityMonitor, make_policy


class EvaluationError(MemdemoError, ValueError):
    """Bad evaluation input: an unknown method or prompt set, or a missing prompt file."""


# name → (make_policy method, AMG preset, AMG terms or None for all)
METHODS: dict[str, tuple[str, str, tuple[str, ...] | None]] = {
    "baseline": ("baseline", "main", None),
    "amg-main": ("amg", "main", None),
    "amg-strong": ("amg", "strong", None),
    "amg-spe": ("amg", "main", ("spe",)),
    "amg-dup": ("amg", "main", ("dup",)),
    "amg-sim": ("amg", "main", ("sim",)),
    "stp": ("stp", "main", None),
    "dtp": ("dtp", "main", None),
    "og-stp": ("og-stp", "main", None),
    "og-dtp": ("og-dtp", "main", None),
}
METHOD_NAMES = tuple(METHODS)


def parse_methods(text: str) -> list[str]:
    """Comma-separated method names, checked, duplicates dropped, order kept."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise EvaluationError(f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METHODS)}")
    return names


def make_method_policy(name: str, cfg: float, monitor: SimilarityMonitor | None) -> Policy:
    """A fresh policy for one generation of the named evaluation method."""
    if name not in METHODS:
        raise EvaluationError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    method, preset, terms = METHODS[name]
    return make_policy(method, cfg, monitor, amg_preset=preset, terms=terms)
