"""Evaluation method names → guidance policies; amg-* names pick an AMG preset and a subset of its terms."""

from __future__ import annotations

from memdemo.errors import MemdemoError
from memdemo.guidance import Policy, SimilarityMonitor, make_policy


class EvaluationError(MemdemoError, ValueError):
    """Bad evaluation input: an unknown method or prompt set, or a missing prompt file."""


# name → (make_policy method, AMG preset, AMG overrides: a subset of terms or another threshold schedule)
METHODS: dict[str, tuple[str, str, dict]] = {
    "baseline": ("baseline", "main", {}),
    "amg-main": ("amg", "main", {}),
    "amg-strong": ("amg", "strong", {}),
    "amg-spe": ("amg", "main", {"terms": ("spe",)}),
    "amg-dup": ("amg", "main", {"terms": ("dup",)}),
    "amg-sim": ("amg", "main", {"terms": ("sim",)}),
    "amg-no-sim": ("amg", "main", {"terms": ("spe", "dup")}),
    "amg-constant-threshold": ("amg", "main", {"schedule": "constant"}),
    "stp": ("stp", "main", {}),
    "dtp": ("dtp", "main", {}),
    "og-stp": ("og-stp", "main", {}),
    "og-dtp": ("og-dtp", "main", {}),
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
    method, preset, overrides = METHODS[name]
    return make_policy(method, cfg, monitor, amg_preset=preset, **overrides)
