"""A run as the browser sees it: throttled frames of both images, their nearest training images, the live plots,
the x̂0 strip and, at the end, a summary and a downloadable bundle."""

from __future__ import annotations

import io
import shlex
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from memdemo.guidance import METHODS
from memdemo.guidance.base import TERM_NAMES
from memdemo.plots import draw_norm, draw_similarity, panel_figure, trace_figure
from memdemo.sampling import Generation, StepUpdate, to_uint8
from memdemo.trace import Trace
from memdemo.ui.judge import Judge, Judgement, describe, own_line, verdict_sentence

DISPLAY_SIZE = 256
STRIP_FRAMES = 10
OVERHEAD_FACTOR = 10
# Stop and a client's cancel take effect only when the handler yields, so frames are never further apart than this.
MAX_FRAME_GAP = 2.0


@dataclass
class Frame:
    """Everything the page shows at one moment of a run; `step` of `total` tells the Stop button where it was."""

    images: dict[str, np.ndarray]
    nearest: dict[str, np.ndarray | None]
    verdicts: dict[str, str]
    own_image: np.ndarray | None
    own_text: str
    norm_plot: Figure
    similarity_plot: Figure
    strip: np.ndarray
    step: int
    total: int
    judgements: dict[str, Judgement | None] = field(default_factory=dict)
    summary: str = ""
    bundle: str | None = None


@dataclass
class Verdicts:
    """How a model's runs are judged: the guide's λ (the threshold its σ_t signal is compared with, for the plot) and
    the Judge that gives every image its verdict (None: no copy detector for this model)."""

    guide_threshold: float | None
    feature: str
    judge: Judge | None = None

    def judgements(self, images: dict[str, np.ndarray], prompt: str) -> dict[str, Judgement | None]:
        if self.judge is None:
            return dict.fromkeys(images)
        return {name: self.judge.judge(image, prompt) for name, image in images.items()}

    def nearest_images(self, judgements: dict[str, Judgement | None]) -> dict[str, np.ndarray | None]:
        return {
            name: None if j is None or self.judge is None else upscale(self.judge.nearest_image(j))
            for name, j in judgements.items()
        }

    def own_image(self, prompt: str) -> np.ndarray | None:
        own = None if self.judge is None else self.judge.own_image(prompt)
        return None if own is None else upscale(own)


def upscale(image: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """Nearest-neighbour enlargement so that 32-px emoji stay crisp in the browser."""
    if image.shape[0] >= size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.NEAREST))


def decoded(backend, x0: torch.Tensor) -> np.ndarray:
    """x̂0 decoded to a uint8 image at the model's size (no clipping in the sampler; the display clamps)."""
    with torch.no_grad():
        return to_uint8(backend.decode(x0).float())[0]


def strip_image(columns: list[tuple[np.ndarray, np.ndarray]], size: int = 64) -> np.ndarray:
    """Two rows (baseline over mitigated) of x̂0 previews, left = early steps."""
    if not columns:
        return np.full((2 * size, size, 3), 255, dtype=np.uint8)
    cells = [
        [np.asarray(Image.fromarray(c[row]).resize((size, size), Image.NEAREST)) for c in columns] for row in (0, 1)
    ]
    return np.concatenate([np.concatenate(row, 1) for row in cells], 0)


def summarize(trace: Trace, judgements: dict[str, Judgement | None], guide_threshold: float | None) -> str:
    """One paragraph, from the same Judgements as the verdict lines (so it cannot contradict them): both verdicts,
    what the method did, where a transition happened, how long it took."""
    base, mit, method = trace.baseline, trace.mitigated, trace.run.method
    total = len(mit.steps)
    label = "Mitigated" if method != "baseline" else "Mitigated (no mitigation: the same image)"
    parts = [verdict_sentence("Baseline", judgements["baseline"]), verdict_sentence(label, judgements["mitigated"])]
    fired = [s for s in mit.steps if s.active]
    if any(s.threshold is not None for s in mit.steps) and guide_threshold is not None:
        # the gate reads σ_t before guidance (recorded as the "sigma" scale); the plotted σ_t is after it
        gate_open = sum(s.scales.get("sigma", s.similarity or 0) > s.threshold for s in mit.steps)
        counts = {name: sum(term in s.terms for s in fired) for term, name in TERM_NAMES.items()}
        terms = ", ".join(f"{name} on {n}" for name, n in counts.items() if n) or "no term"
        parts.append(
            f"The guide's σ_t exceeded λ_t on {gate_open} of {total} steps; AMG acted on {len(fired)} ({terms})."
        )
    transition = trace.run.transition
    if transition:
        how = "found no minimum of d_t and switched at the static t" if transition.fallback else "switched to CFG"
        parts.append(f"{method.upper()} {how} at step {transition.step} (t = {transition.t}).")
    elif base.steps and method != "baseline" and not fired:
        parts.append("The mitigation did not act on this run.")
    parts.append(f"{total} steps in {trace.run.seconds or 0:.1f} s.")
    return " ".join(parts)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def reproduce_command(trace: Trace) -> str:
    """The `python -m memdemo generate` command that reruns this run: its request, its index, and every method
    option that differs from the method's default."""
    run, request = trace.run, trace.run.params
    parts = ["python -m memdemo generate", f"--model {run.model}", f"--prompt {shlex.quote(run.prompt)}"]
    parts += [f"--seed {run.seed}", f"--steps {request['steps']}", f"--cfg {request['cfg']:g}"]
    parts += [f"--scheduler {request['scheduler']}", f"--method {run.method}"]
    if run.index:
        parts.append(f"--index {shlex.quote(run.index)}")
    spec = METHODS.get(run.method)
    for param in spec.params if spec else ():
        value, default = run.method_params.get(param.name), param.default
        if value is None or value is False or _as_list(value) == _as_list(default):
            continue
        parts.append(param.flag if value is True else f"{param.flag} {','.join(_as_list(value))}")
    return " ".join(parts) + " --out run"


def _as_list(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def write_bundle(trace: Trace, images: dict[str, np.ndarray], extras: dict[str, bytes], folder: Path) -> str:
    """A zip that reproduces and explains the run: trace.json, both images at full and display size, `extras`
    (plot, training images, verdicts), and the command that reruns it."""
    path = folder / f"memdemo-{trace.run.method}-seed{trace.run.seed}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("trace.json", trace.to_json() + "\n")
        for name, image in images.items():
            bundle.writestr(f"{name}.png", _png(image))
            bundle.writestr(f"{name}-{DISPLAY_SIZE}px.png", _png(upscale(image)))
        for name, payload in extras.items():
            bundle.writestr(name, payload)
        bundle.writestr("command.txt", reproduce_command(trace) + "\n")
    return str(path)


def frame_gap(interval: float, frame_seconds: float) -> float:
    """Seconds of sampling before the next frame: OVERHEAD_FACTOR × what the last frame cost (drawing it plus the
    consumer's time to send it), capped at MAX_FRAME_GAP, and never under `interval`."""
    return max(interval, min(MAX_FRAME_GAP, OVERHEAD_FACTOR * frame_seconds))


@dataclass
class LiveRun:
    """Drives a Generation and emits a Frame at most every `interval` seconds, and always at the end."""

    generation: Generation
    verdicts: Verdicts
    interval: float = 0.5
    bundle_folder: Path | None = None
    strip: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def frames(self) -> Iterator[Frame]:
        """Frames spaced by `frame_gap`: streaming adds at most ~1/OVERHEAD_FACTOR to the run, and a cancel waits at
        most MAX_FRAME_GAP plus one frame."""
        steps = self.generation.request.steps
        every = max(1, steps // STRIP_FRAMES)
        gap, last = self.interval, time.perf_counter()
        for update in self.generation:
            index = update.baseline.index
            if index % every == 0 or index == steps - 1:
                self.strip.append(self._previews(update))
            if time.perf_counter() - last >= gap and index < steps - 1:
                started = time.perf_counter()
                yield self._frame(update)
                last = time.perf_counter()
                gap = frame_gap(self.interval, last - started)
        yield self._final()

    def _previews(self, update: StepUpdate) -> tuple[np.ndarray, np.ndarray]:
        """Both x̂0 as uint8 images, reusing the decode that σ_t made when there was one."""
        if update.decoded is not None:
            images = to_uint8(update.decoded.float())
            return images[0], images[1]
        backend = self.generation.backend
        return decoded(backend, update.x0_baseline), decoded(backend, update.x0_mitigated)

    def _plots(self) -> tuple[Figure, Figure]:
        trace, steps = self.generation.trace, self.generation.request.steps
        return panel_figure(trace, draw_norm, steps), panel_figure(trace, draw_similarity, steps)

    def _frame(self, update: StepUpdate) -> Frame:
        prompt = self.generation.request.prompt
        latest = dict(zip(("baseline", "mitigated"), self._previews(update), strict=True))
        judgements = self.verdicts.judgements(latest, prompt)
        norm_plot, similarity_plot = self._plots()
        return Frame(
            images={name: upscale(image) for name, image in latest.items()},
            nearest=self.verdicts.nearest_images(judgements),
            verdicts={name: describe(j, "live") for name, j in judgements.items()},
            own_image=self.verdicts.own_image(prompt),
            own_text=own_line(judgements["baseline"], judgements["mitigated"]),
            norm_plot=norm_plot,
            similarity_plot=similarity_plot,
            strip=strip_image(self.strip),
            step=update.baseline.index + 1,
            total=self.generation.request.steps,
            judgements=judgements,
        )

    def _final(self) -> Frame:
        generation = self.generation
        trace, prompt = generation.trace, generation.request.prompt
        judgements = self.verdicts.judgements(generation.images, prompt)
        verdicts = {name: describe(j, "final") for name, j in judgements.items()}
        own_text = own_line(judgements["baseline"], judgements["mitigated"])
        summary = summarize(trace, judgements, self.verdicts.guide_threshold)
        norm_plot, similarity_plot = self._plots()
        extras = {
            "plot.png": _figure_png(trace_figure(trace)),
            "verdicts.md": _verdicts_md(verdicts, own_text, summary),
        }
        nearest = {name: self.verdicts.judge.nearest_image(j) for name, j in judgements.items() if j is not None}
        extras |= {f"{name}-nearest-training-image.png": _png(image) for name, image in nearest.items()}
        own = None if self.verdicts.judge is None else self.verdicts.judge.own_image(prompt)
        if own is not None:
            extras["own-training-image.png"] = _png(own)
        folder = self.bundle_folder or Path(tempfile.mkdtemp(prefix="memdemo-run-"))
        return Frame(
            images={name: upscale(image) for name, image in generation.images.items()},
            nearest=self.verdicts.nearest_images(judgements),
            verdicts=verdicts,
            own_image=None if own is None else upscale(own),
            own_text=own_text,
            norm_plot=norm_plot,
            similarity_plot=similarity_plot,
            strip=strip_image(self.strip),
            step=generation.request.steps,
            total=generation.request.steps,
            judgements=judgements,
            summary=summary,
            bundle=write_bundle(trace, generation.images, extras, folder),
        )


def _figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _verdicts_md(verdicts: dict[str, str], own_text: str, summary: str) -> bytes:
    lines = ["# Verdicts (scoring descriptor)", "", f"- baseline: {verdicts['baseline']}"]
    lines += [f"- mitigated: {verdicts['mitigated']}", "", own_text, "", summary, ""]
    return "\n".join(lines).encode("utf-8")


def stopped_text(step: int, total: int, judgements: dict[str, Judgement | None]) -> tuple[str, dict[str, str]]:
    """What the page says after Stop: where the run was, and the last x̂0's verdicts, greyed as not final."""
    summary = f"Stopped at step {step} of {total}: no final images, verdicts or download."
    return summary, {name: describe(j, "stopped") for name, j in judgements.items()}
