"""The demo's controls as one mapping, checked and turned into an engine request and policy through the method
registry, with messages that name the fix."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from memdemo.backends import SCHEDULERS, Backend
from memdemo.guidance import METHODS, ParameterError, SimilarityMonitor, build_policy, method_spec
from memdemo.guidance.base import Policy
from memdemo.guidance.contradictions import ignored_options
from memdemo.sampling import Request

MAX_PROMPT_CHARS = 1000
SIMILARITY_LEVELS = ("object", "pixel")
DEFAULT_METHOD = "amg"
# (label, minimum, maximum) of the numbers every run has.
LIMITS = {
    "seed": ("seed", 0, 2**32 - 1),
    "steps": ("steps", 1, 200),
    "cfg": ("CFG scale", 0.0, 30.0),
}
RUN_KEYS = ("prompt", "seed", "steps", "cfg", "scheduler", "method", "similarity")


class SettingsError(ParameterError):
    """A control holds a value the engine cannot use; the message names the fix."""


@dataclass(frozen=True)
class RunSettings:
    """One run: prompt, sampling settings, one registered method with its checked parameters, the similarity."""

    prompt: str = ""
    seed: int = 0
    steps: int = 50
    cfg: float = 7.5
    scheduler: str = "ddim"
    method: str = DEFAULT_METHOD
    params: dict[str, Any] = field(default_factory=dict)
    similarity: str = "object"

    def request(self) -> Request:
        return Request(self.prompt, self.seed, self.steps, self.cfg, self.scheduler)

    def policy(self, monitor: SimilarityMonitor | None) -> Policy:
        """A fresh policy for this run (policies hold per-run state such as the transition detector)."""
        return build_policy(self.method, self.params, self.cfg, monitor)


def param_key(method: str, name: str) -> str:
    """The mapping key of one method option, e.g. "amg.c3"."""
    return f"{method}.{name}"


def option_keys() -> list[str]:
    """Every method option's key in the page's order: per registered method, its basic then its advanced options."""
    return [
        param_key(spec.name, param.name)
        for spec in METHODS.values()
        for advanced in (False, True)
        for param in spec.params
        if param.advanced == advanced
    ]


def control_keys() -> list[str]:
    """The Generate endpoint's inputs, in order: the model, the run's settings, then every method option."""
    return ["model", *RUN_KEYS, *option_keys()]


def api_arguments(model: str, values: Mapping[str, Any]) -> list[Any]:
    """Positional arguments for the Generate endpoint: `values` by key, every other control at its default."""
    defaults: dict[str, Any] = {"prompt": "", **{k: getattr(RunSettings(), k) for k in RUN_KEYS if k != "prompt"}}
    for spec in METHODS.values():
        for param in spec.params:
            default = list(param.default) if param.kind is tuple else param.default
            defaults[param_key(spec.name, param.name)] = "" if default is None and param.kind is str else default
    return [model, *({**defaults, **values}[key] for key in control_keys()[1:])]


def clean_prompt(prompt: Any) -> tuple[str, list[str]]:
    """The prompt to use and what the person should be told about it (empty → unconditional, long → truncated)."""
    if prompt is not None and not isinstance(prompt, str):
        raise SettingsError(f"the prompt must be text, got {type(prompt).__name__}")
    prompt = (prompt or "").strip()
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as error:
        raise SettingsError("the prompt holds characters that are not valid Unicode text; retype it") from error
    if not prompt:
        return "", ["Empty prompt: sampling unconditionally (the caption is the empty string)."]
    if len(prompt) > MAX_PROMPT_CHARS:
        note = f"Prompt truncated from {len(prompt):,} to {MAX_PROMPT_CHARS:,} characters."
        return prompt[:MAX_PROMPT_CHARS], [note]
    return prompt, []


def checked_number(name: str, value: Any, integer: bool = False) -> float | int:
    """`value` if it is a finite number within LIMITS[name], else a SettingsError that gives the allowed range."""
    label, low, high = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"{label} must be a number between {low:g} and {high:g}, got {value!r}")
    if not low <= value <= high:
        raise SettingsError(f"{label} must be between {low:g} and {high:g}, got {value}; change it and run again")
    if integer and float(value) != int(value):
        raise SettingsError(f"{label} must be a whole number, got {value}")
    return int(value) if integer else float(value)


def checked_choice(label: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SettingsError(f"{label} must be one of {', '.join(choices)}, got {value!r}")
    return value


def method_params(method: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen method's options from the mapping (keys "method.param"), blanks as the preset's None, checked."""
    spec = method_spec(method)
    params = {}
    for param in spec.params:
        value = values.get(param_key(method, param.name), param.default)
        if value == "" or value == []:
            value = None if param.kind is not tuple else value
        params[param.name] = value
    return spec.check(params)


def run_timesteps(backend: Backend, settings: RunSettings) -> list[int]:
    """The timesteps the run will visit, first to last."""
    scheduler = backend.make_scheduler(settings.scheduler)
    scheduler.set_timesteps(settings.steps)
    return [int(t) for t in scheduler.timesteps]


def transition_notes(settings: RunSettings, timesteps: Sequence[int]) -> list[str]:
    """A note when the switch t lies outside the run's timesteps: the method never acts, or a static switch never
    comes (the run keeps the scale before the switch, or opposite guidance, to the end)."""
    if "switch_t" not in settings.params:
        return []
    switch_t, first, last = settings.params["switch_t"], timesteps[0], timesteps[-1]
    if switch_t >= first:
        return [
            f"switch t = {switch_t} is at or above the first step's t ({first}): {settings.method} switches to CFG "
            f"at once and never acts; lower switch t below {first}."
        ]
    if switch_t < last and not settings.method.endswith("dtp"):
        return [
            f"switch t = {switch_t} is below the last step's t ({last}): {settings.method} never switches to CFG; "
            f"raise switch t to {last} or more."
        ]
    return []


def build_settings(values: Mapping[str, Any]) -> tuple[RunSettings, list[str]]:
    """Check every control of one run (keys RUN_KEYS and "method.param"); return the settings and the notes to show,
    or raise SettingsError. Keys that no control has are refused, so a mistyped API call is not silently ignored."""
    known = set(RUN_KEYS) | {param_key(name, p.name) for name, spec in METHODS.items() for p in spec.params}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(f"unknown setting {', '.join(unknown)}; the settings are {', '.join(sorted(known))}")
    defaults = RunSettings()
    prompt, notes = clean_prompt(values.get("prompt", ""))
    method = values.get("method", defaults.method)
    try:
        params = method_params(method, values)
    except ParameterError as error:
        raise SettingsError(str(error)) from error
    settings = RunSettings(
        prompt=prompt,
        seed=checked_number("seed", values.get("seed", defaults.seed), integer=True),
        steps=checked_number("steps", values.get("steps", defaults.steps), integer=True),
        cfg=checked_number("cfg", values.get("cfg", defaults.cfg)),
        scheduler=checked_choice("sampler", values.get("scheduler", defaults.scheduler), SCHEDULERS),
        method=method,
        params=params,
        similarity=checked_choice("similarity", values.get("similarity", defaults.similarity), SIMILARITY_LEVELS),
    )
    return settings, notes + ignored_options(method, params)


def prompt_and_seed(prompt: Any, seed: Any) -> tuple[RunSettings, list[str]]:
    """Checked settings for a plain CFG run of `prompt` (the Compare and Models tabs set only these two)."""
    return build_settings({"prompt": prompt, "seed": seed, "method": "baseline"})
