"""Step and Trace records: the product's spine. The UI streams them, plots draw them, the CLI writes them as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


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
        return next((s.index for s in self.steps if any(term.startswith("transition") for term in s.terms)), None)


@dataclass
class Trace:
    """Run metadata plus the baseline and the mitigated trajectory, which start from the same x_T."""

    run: dict
    baseline: Trajectory = field(default_factory=Trajectory)
    mitigated: Trajectory = field(default_factory=Trajectory)

    def to_dict(self) -> dict:
        return {
            "run": self.run,
            "trajectories": {name: asdict(getattr(self, name)) for name in ("baseline", "mitigated")},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Trace:
        data = json.loads(text)
        trajectories = {
            name: Trajectory([Step(**step) for step in value["steps"]], Final(**value["final"]))
            for name, value in data["trajectories"].items()
        }
        return cls(data["run"], **trajectories)
