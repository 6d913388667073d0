"""The demo's controls, checked and turned into an engine request and policy, with messages that name the fix."""

from __future__ import annotations

from dataclasses import dataclass

from memdemo.guidance import SimilarityMonitor, make_policy
from memdemo.guidance.amg import AMG_PRESETS, AMG_TERMS
from memdemo.guidance.base import Policy
from memdemo.guidance.thresholds import THRESHOLD_SCHEDULES
from memdemo.sampling import Request

MAX_PROMPT_CHARS = 1000
TRANSITION_MODES = ("off", "static", "dynamic")
SIMILARITY_LEVELS = ("object", "pixel")
# (label, minimum, maximum) of every number the UI accepts.
LIMITS = {
    "seed": ("seed", 0, 2**32 - 1),
    "steps": ("steps", 1, 200),
    "cfg": ("CFG scale", 0.0, 30.0),
    "c1": ("c1", 0.0, 1000.0),
    "c2": ("c2", 0.0, 1000.0),
    "c3": ("c3", 0.0, 1e5),
    "switch_t": ("switch t", 0, 999),
    "og_scale": ("opposite guidance scale", 0.0, 30.0),
}


class SettingsError(ValueError):
    """A control holds a value the engine cannot use; the message names the fix."""


@dataclass(frozen=True)
class RunSettings:
    """One run as the mitigation panel describes it."""

    prompt: str = ""
    seed: int = 0
    steps: int = 50
    cfg: float = 7.5
    scheduler: str = "ddim"
    amg_terms: tuple[str, ...] = AMG_TERMS
    amg_preset: str = "main"
    c1: float | None = None
    c2: float | None = None
    c3: float | None = None
    threshold_schedule: str | None = None
    transition: str = "off"
    switch_t: int = 500
    opposite: bool = False
    og_scale: float | None = None
    similarity: str = "object"

    @property
    def method(self) -> str:
        """The engine method the panel selects: AMG, a transition variant or plain CFG."""
        if self.transition != "off":
            prefix = "og-" if self.opposite else ""
            return f"{prefix}{'stp' if self.transition == 'static' else 'dtp'}"
        return "amg" if self.amg_terms else "baseline"

    def request(self) -> Request:
        return Request(self.prompt, self.seed, self.steps, self.cfg, self.scheduler)

    def policy(self, monitor: SimilarityMonitor | None) -> Policy:
        """A fresh policy for this run (policies hold per-run state such as the transition detector)."""
        pre_scale = -self.og_scale if self.opposite and self.og_scale is not None else None
        return make_policy(
            self.method,
            self.cfg,
            monitor,
            amg_preset=self.amg_preset,
            switch_t=self.switch_t,
            pre_scale=pre_scale,
            terms=self.amg_terms or None,
            c1=self.c1,
            c2=self.c2,
            c3=self.c3,
            schedule=self.threshold_schedule,
        )


def clean_prompt(prompt: str | None) -> tuple[str, list[str]]:
    """The prompt to use and what the person should be told about it (empty → unconditional, long → truncated)."""
    prompt = (prompt or "").strip()
    if not prompt:
        return "", ["Empty prompt: sampling unconditionally (the caption is the empty string)."]
    if len(prompt) > MAX_PROMPT_CHARS:
        note = f"Prompt truncated from {len(prompt):,} to {MAX_PROMPT_CHARS:,} characters."
        return prompt[:MAX_PROMPT_CHARS], [note]
    return prompt, []


def checked_number(name: str, value: float | None, integer: bool = False) -> float | int:
    """`value` if it lies within LIMITS[name], else a SettingsError that gives the allowed range."""
    label, low, high = LIMITS[name]
    if value is None or value != value or not low <= value <= high:
        raise SettingsError(f"{label} must be between {low:g} and {high:g}, got {value}; change it and run again")
    if integer and float(value) != int(value):
        raise SettingsError(f"{label} must be a whole number, got {value}")
    return int(value) if integer else float(value)


def optional_number(name: str, value: float | None) -> float | None:
    """An advanced override: blank (None) keeps the preset's value."""
    return None if value is None else checked_number(name, value)


def build_settings(
    prompt: str | None,
    seed: float,
    steps: float,
    cfg: float,
    scheduler: str,
    amg_terms: list[str],
    amg_preset: str,
    c1: float | None,
    c2: float | None,
    c3: float | None,
    threshold_schedule: str | None,
    transition: str,
    switch_t: float,
    opposite: bool,
    og_scale: float | None,
    similarity: str = "object",
) -> tuple[RunSettings, list[str]]:
    """Check every control; return the settings and the notes to show (or raise SettingsError)."""
    prompt, notes = clean_prompt(prompt)
    terms = tuple(term for term in AMG_TERMS if term in (amg_terms or []))
    if transition not in TRANSITION_MODES:
        raise SettingsError(f"transition point must be one of {', '.join(TRANSITION_MODES)}, got {transition!r}")
    if transition != "off" and terms:
        raise SettingsError(
            "AMG and a transition point are separate methods: untick the AMG terms or set the transition point to "
            "off (the Compare methods tab runs them all)"
        )
    if amg_preset not in AMG_PRESETS:
        raise SettingsError(f"AMG preset must be one of {', '.join(AMG_PRESETS)}, got {amg_preset!r}")
    if similarity not in SIMILARITY_LEVELS:
        raise SettingsError(f"similarity must be one of {', '.join(SIMILARITY_LEVELS)}, got {similarity!r}")
    schedule = None if threshold_schedule in (None, "", "preset") else threshold_schedule
    if schedule is not None and schedule not in THRESHOLD_SCHEDULES:
        raise SettingsError(f"threshold schedule must be one of {', '.join(THRESHOLD_SCHEDULES)}")
    settings = RunSettings(
        prompt=prompt,
        seed=checked_number("seed", seed, integer=True),
        steps=checked_number("steps", steps, integer=True),
        cfg=checked_number("cfg", cfg),
        scheduler=scheduler,
        amg_terms=terms,
        amg_preset=amg_preset,
        c1=optional_number("c1", c1),
        c2=optional_number("c2", c2),
        c3=optional_number("c3", c3),
        threshold_schedule=schedule,
        transition=transition,
        switch_t=checked_number("switch_t", switch_t, integer=True),
        opposite=bool(opposite),
        og_scale=optional_number("og_scale", og_scale),
        similarity=similarity,
    )
    return settings, notes


def prompt_and_seed(prompt: str | None, seed: float) -> tuple[RunSettings, list[str]]:
    """Checked settings for a plain CFG run of `prompt` (the Compare and Models tabs set only these two)."""
    defaults = RunSettings()
    return build_settings(
        prompt,
        seed,
        defaults.steps,
        defaults.cfg,
        defaults.scheduler,
        [],
        defaults.amg_preset,
        None,
        None,
        None,
        None,
        "off",
        defaults.switch_t,
        False,
        None,
    )
