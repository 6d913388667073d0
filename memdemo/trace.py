"""Step and Trace records: the product's spine. The UI streams them, plots draw them, the CLI writes them as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from memdemo.errors import MemdemoError


@dataclass
class Step:
    """One denoising step of one trajectory."""

    index: int
    t: int
    alpha_bar: float
    cond_uncond_norm: float
    similarity: float | None = None
    nl2: float | None = None
    nearest_id: int | None = None
    nearest_caption: str | None = None
    threshold: float | None = None
    active: bool = False
    terms: list[str] = field(default_factory=list)
    scales: dict[str, float] = field(default_factory=dict)
    switched: bool = False
    fallback: bool = False


@dataclass
class Final:
    """A finished image's nearest training image and its similarity."""

    nearest_id: int | None = None
    nearest_caption: str | None = None
    similarity: float | None = None
    nl2: float | None = None
    cosine: float | None = None


@dataclass
class Trajectory:
    steps: list[Step] = field(default_factory=list)
    final: Final = field(default_factory=Final)

    @property
    def transition_step(self) -> int | None:
        """Index of the step where a transition-point policy switched to CFG, if any."""
        return next((s.index for s in self.steps if s.switched), None)


@dataclass
class TransitionInfo:
    """Where a transition-point policy switched to CFG, and whether Alg. 1 found no minimum and it fell back."""

    step: int
    t: int
    alpha_bar: float
    fallback: bool


@dataclass
class RunInfo:
    """What was run: model, prompt, seed, method and its JSON-safe parameters, plus what the run reported."""

    model: str
    prompt: str
    seed: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    method_params: dict[str, Any] = field(default_factory=dict)
    feature: str | None = None
    index: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float | None = None
    transition: TransitionInfo | None = None

    def __post_init__(self) -> None:
        self.params = json_safe(self.params)
        self.method_params = json_safe(self.method_params)


def json_safe(value: Any) -> Any:
    """Tuples become lists (as JSON gives them back); a non-finite number is refused, since JSON has none."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise MemdemoError(f"a run parameter is {value}, which JSON cannot hold; use a finite number")
    return value


@dataclass
class Trace:
    """Run metadata plus the baseline and the mitigated trajectory, which start from the same x_T."""

    run: RunInfo
    baseline: Trajectory = field(default_factory=Trajectory)
    mitigated: Trajectory = field(default_factory=Trajectory)

    def to_dict(self) -> dict:
        return {
            "run": asdict(self.run),
            "trajectories": {name: asdict(getattr(self, name)) for name in ("baseline", "mitigated")},
        }

    def to_json(self) -> str:
        """Strict JSON: a NaN or infinity anywhere is an error, never a non-standard token in the file."""
        try:
            return json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)
        except ValueError as error:
            raise MemdemoError(
                f"the trace holds a non-finite number and cannot be written as JSON ({error})"
            ) from error

    @classmethod
    def from_json(cls, text: str) -> Trace:
        data = json.loads(text)
        trajectories = {
            name: Trajectory([Step(**step) for step in value["steps"]], Final(**value["final"]))
            for name, value in data["trajectories"].items()
        }
        run = dict(data["run"])
        if run.get("transition") is not None:
            run["transition"] = TransitionInfo(**run["transition"])
        return cls(RunInfo(**run), **trajectories)
