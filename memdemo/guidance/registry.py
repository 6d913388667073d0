"""The method registry: every mitigation is one MethodSpec with typed parameters; the CLI flags, the UI's method
choice and options, evaluation's named variants, the Compare tab and the bench are all generated from it."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from memdemo.guidance.base import GuidanceError, Policy
from memdemo.guidance.similarity import SimilarityMonitor


class ParameterError(GuidanceError, ValueError):
    """An unknown method, variant or parameter, or a value outside its range; the message lists what is valid."""


@dataclass(frozen=True)
class Param:
    """One typed method parameter: `kind` is float, int, bool, str (one of `choices`) or tuple (a subset of them).
    `default` None means "the preset decides" and is shown as blank."""

    name: str
    kind: type
    default: Any
    label: str
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    advanced: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def describe_range(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices) if self.kind is str else "a subset of " + ", ".join(self.choices)
        return f"between {self.low:g} and {self.high:g}"

    def check(self, value: Any) -> Any:
        """`value` coerced to `kind` and checked against the range or choices, or a ParameterError naming them."""
        if value is None:
            return None
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            raise ParameterError(f"{self.label} must be true or false, got {value!r}")
        if self.kind is tuple:
            items = tuple(value.split(",")) if isinstance(value, str) else value
            if not isinstance(items, (tuple, list)) or not all(isinstance(item, str) for item in items):
                raise ParameterError(f"{self.label} must be {self.describe_range()}, got {value!r}")
            chosen = tuple(choice for choice in self.choices if choice in {item.strip() for item in items})
            unknown = {item.strip() for item in items} - set(self.choices)
            if unknown or not chosen:
                raise ParameterError(f"{self.label} must be {self.describe_range()} (not empty), got {value!r}")
            return chosen
        if self.kind is str:
            if value not in self.choices:
                raise ParameterError(f"{self.label} must be {self.describe_range()}, got {value!r}")
            return value
        return self._number(value)

    def _number(self, value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{self.label} must be a number {self.describe_range()}, got {value!r}")
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise ParameterError(f"{self.label} must be {self.describe_range()}, got {value}")
        if self.kind is int:
            if float(value) != int(value):
                raise ParameterError(f"{self.label} must be a whole number {self.describe_range()}, got {value}")
            return int(value)
        return float(value)


@dataclass(frozen=True)
class BuildContext:
    """What a method's builder may use besides its parameters."""

    cfg: float
    monitor: SimilarityMonitor | None


@dataclass(frozen=True)
class MethodSpec:
    """A mitigation: name, label, one-line description with its paper reference, parameters and a policy builder."""

    name: str
    label: str
    description: str
    paper: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, Any], BuildContext], Policy]
    needs_monitor: bool = False

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def check(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every parameter with its default filled in and its value checked; unknown names are refused."""
        values = dict(values or {})
        unknown = sorted(set(values) - {p.name for p in self.params})
        if unknown:
            valid = ", ".join(p.name for p in self.params) or "none"
            raise ParameterError(f"{self.name} has no parameter {', '.join(unknown)}; its parameters: {valid}")
        return {p.name: p.check(values.get(p.name, p.default)) for p in self.params}


@dataclass(frozen=True)
class Variant:
    """A named method + parameter preset, as evaluation, the Compare tab and the bench run it."""

    name: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""


METHODS: dict[str, MethodSpec] = {}
VARIANTS: dict[str, Variant] = {}


def register(spec: MethodSpec, *variants: Variant) -> MethodSpec:
    """Add a method (and its named variants) to the registry; the method's own name is also a variant."""
    METHODS[spec.name] = spec
    for variant in (Variant(spec.name, spec.name, {}, spec.label), *variants):
        spec.check(variant.params)
        VARIANTS.setdefault(variant.name, variant)
    return spec


def method_spec(name: str) -> MethodSpec:
    """The registered method, or a ParameterError listing every method with its description."""
    if not isinstance(name, str) or name not in METHODS:
        choices = "; ".join(f"{spec.name}: {spec.description}" for spec in METHODS.values())
        raise ParameterError(f"unknown method {name!r}; choose one of {choices}")
    return METHODS[name]


def variant(name: str) -> Variant:
    """The named variant, or a ParameterError listing all of them."""
    if not isinstance(name, str) or name not in VARIANTS:
        raise ParameterError(f"unknown method {name!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def build_policy(
    method: str, params: Mapping[str, Any] | None, cfg: float, monitor: SimilarityMonitor | None
) -> Policy:
    """A fresh policy for one run of `method` with checked `params` (policies hold per-run state)."""
    spec = method_spec(method)
    if spec.needs_monitor and monitor is None:
        raise ParameterError(
            f"{spec.label} needs a reference set to measure similarity (CLI: --index INDEX, built with "
            "`python -m memdemo index build`); or choose a method that does not, such as dtp"
        )
    return spec.build(spec.check(params), BuildContext(cfg, monitor))


def variant_policy(name: str, cfg: float, monitor: SimilarityMonitor | None) -> Policy:
    """A fresh policy for the named variant."""
    chosen = variant(name)
    return build_policy(chosen.method, chosen.params, cfg, monitor)


def distinct_params() -> dict[str, tuple[Param, list[str]]]:
    """Every parameter name across the methods, with the first definition and the methods that take it."""
    found: dict[str, tuple[Param, list[str]]] = {}
    for spec in METHODS.values():
        for param in spec.params:
            found.setdefault(param.name, (param, []))[1].append(spec.name)
    return found


def add_method_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """--method and one flag per method parameter, generated from the registry (unset flags keep the preset)."""
    about = "; ".join(f"{spec.name}: {spec.description}" for spec in METHODS.values())
    parser.add_argument("--method", default=default, help=f"mitigation to compare ({about})")
    group = parser.add_argument_group("method options (each applies to the methods named in its help)")
    for name, (param, owners) in distinct_params().items():
        help_text = (
            f"{param.help} [{', '.join(owners)}; {param.describe_range()}]"
            if param.kind is not bool
            else (f"{param.help} [{', '.join(owners)}]")
        )
        if param.kind is bool:
            group.add_argument(param.flag, dest=name, action="store_true", default=None, help=help_text)
        else:
            kinds = {float: float, int: int}
            group.add_argument(param.flag, dest=name, type=kinds.get(param.kind, str), default=None, help=help_text)


def method_params_from_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The chosen method and the flags given for it; a flag of another method is refused with the fix."""
    spec = method_spec(args.method)
    given = {name: getattr(args, name) for name in distinct_params() if getattr(args, name, None) is not None}
    foreign = [name for name in given if name not in {p.name for p in spec.params}]
    if foreign:
        flags = ", ".join(distinct_params()[name][0].flag for name in foreign)
        owners = sorted({owner for name in foreign for owner in distinct_params()[name][1]})
        raise ParameterError(
            f"{flags} does not apply to --method {spec.name}; drop it, or use --method {'/'.join(owners)}"
        )
    spec.check(given)  # range and type errors surface before any model loads
    return spec.name, given
