"""Evaluation method names are the registry's variants: a method plus a parameter preset (`amg-main`, `amg-sim`, …)."""

from __future__ import annotations

from memdemo.errors import MemdemoError
from memdemo.guidance import VARIANTS, ParameterError, Policy, SimilarityMonitor, variant, variant_policy


class EvaluationError(MemdemoError, ValueError):
    """Bad evaluation input: an unknown method or prompt set, or a missing prompt file."""


def method_names() -> tuple[str, ...]:
    """Every registered variant, in registration order (read at call time, so later registrations count)."""
    return tuple(VARIANTS)


def parse_methods(text: str) -> list[str]:
    """Comma-separated variant names, checked, duplicates dropped, order kept."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise ParameterError(f"--methods is empty; choose one or more of {', '.join(VARIANTS)}")
    for name in names:
        variant(name)
    return names


def make_method_policy(name: str, cfg: float, monitor: SimilarityMonitor | None) -> Policy:
    """A fresh policy for one generation of the named variant."""
    return variant_policy(name, cfg, monitor)
