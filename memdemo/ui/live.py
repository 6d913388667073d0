"""A run as the browser sees it: throttled frames of both images, their nearest training images, the live plots,
the x̂0 strip and, at the end, a summary and a downloadable bundle."""

from __future__ import annotations

import io
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

from memdemo.evaluation.scoring import CopydetScorer
from memdemo.guidance.base import TERM_NAMES
from memdemo.plots import draw_norm, draw_similarity, panel_figure
from memdemo.sampling import Generation, StepUpdate, to_uint8
from memdemo.trace import Final, Step, Trace, Trajectory

DISPLAY_SIZE = 256
STRIP_FRAMES = 10
OVERHEAD_FACTOR = 10


@dataclass
class Frame:
    """Everything the page shows at one moment of a run."""

    images: dict[str, np.ndarray]
    nearest: dict[str, np.ndarray | None]
    verdicts: dict[str, str]
    norm_plot: Figure
    similarity_plot: Figure
    strip: np.ndarray
    summary: str = ""
    bundle: str | None = None


@dataclass
class Verdicts:
    """How a similarity is judged: against the index's calibrated copy threshold, when it has one."""

    threshold: float | None
    feature: str
    references: np.ndarray | None = None
    scorer: CopydetScorer | None = None

    def nearest_image(self, nearest_id: int | None) -> np.ndarray | None:
        if self.references is None or nearest_id is None:
            return None
        return upscale(self.references[nearest_id])

    def describe(self, record: Final | Step, prompt: str, done: bool) -> str:
        """E.g. 'final image: **COPY** — σ = 0.82 > λ = 0.45; nearest #12 “warning” — the prompt's own training
        image'."""
        if record.similarity is None:
            return "No reference index for this model: similarity is not measured."
        when = "final image" if done else "current x̂0"
        nearest = f"#{record.nearest_id} “{record.nearest_caption}”"
        own = " — the prompt's own training image" if record.nearest_caption == prompt and prompt else ""
        if self.threshold is None:
            return f"{when}: nearest {nearest}{own}, σ = {record.similarity:.2f} ({self.feature})"
        copy = record.similarity > self.threshold
        sign, word = (">", "COPY") if copy else ("≤", "not a copy")
        sigma = f"σ = {record.similarity:.2f} {sign} λ = {self.threshold:.2f}"
        return f"{when}: **{word}** — {sigma}; nearest {nearest}{own}"

    def independent_check(self, image: np.ndarray, prompt: str) -> str:
        """The final image judged by the scoring descriptor, which guidance never follows (docs/decisions.md §9):
        pushing σ of the guide below λ could fool the guide without removing the copy."""
        if self.scorer is None:
            return ""
        similarity, caption = self.scorer.judge(image)
        own = " (the prompt's own)" if caption == prompt and prompt else ""
        tau = self.scorer.threshold
        word, sign = ("a copy", ">") if similarity > tau else ("not a copy", "≤")
        return f"Independent check (copydet): {word}, {similarity:.2f} {sign} τ = {tau:.2f}, nearest “{caption}”{own}."


def upscale(image: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """Nearest-neighbour enlargement so that 32-px emoji stay crisp in the browser."""
    if image.shape[0] >= size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.NEAREST))


def preview(backend, x0: torch.Tensor) -> np.ndarray:
    """x̂0 decoded to a displayable image (no clipping in the sampler; the display clamps)."""
    with torch.no_grad():
        return upscale(to_uint8(backend.decode(x0).float())[0])


def strip_image(columns: list[tuple[np.ndarray, np.ndarray]], size: int = 64) -> np.ndarray:
    """Two rows (baseline over mitigated) of x̂0 previews, left = early steps."""
    if not columns:
        return np.full((2 * size, size, 3), 255, dtype=np.uint8)
    cells = [[np.asarray(Image.fromarray(c[row]).resize((size, size))) for c in columns] for row in (0, 1)]
    return np.concatenate([np.concatenate(row, 1) for row in cells], 0)


def summarize(trace: Trace, threshold: float | None) -> str:
    """One paragraph: when a copy was detected, what fired how often, how σ moved, where the transition was."""
    base, mit, method = trace.baseline, trace.mitigated, trace.run.method
    total = len(mit.steps)
    parts = []
    if threshold is not None and base.steps and base.steps[0].similarity is not None:
        first = next((s.index for s in base.steps if s.similarity > threshold), None)
        detected = f"copy detected at step {first} of {total}" if first is not None else "no copy detected"
        parts.append(f"Baseline: {detected} (σ_t > λ = {threshold:.2f}).")
    fired = [s for s in mit.steps if s.active]
    if method == "amg":
        counts = {name: sum(term in s.terms for s in fired) for term, name in TERM_NAMES.items()}
        terms = ", ".join(f"{name} on {n}" for name, n in counts.items() if n) or "no term"
        parts.append(f"AMG fired on {len(fired)} of {total} steps ({terms}).")
    transition = trace.run.transition
    if transition:
        how = "fell back to the static switch" if transition.fallback else "switched to CFG"
        parts.append(f"{method.upper()} {how} at step {transition.step} (t = {transition.t}).")
    if base.final.similarity is not None and method != "baseline":
        parts.append(f"Final similarity {base.final.similarity:.2f} → {mit.final.similarity:.2f}.")
    parts.append(f"{total} steps in {trace.run.seconds or 0:.1f} s.")
    return " ".join(parts)


def write_bundle(trace: Trace, images: dict[str, np.ndarray]) -> str:
    """A zip with trace.json and both PNGs in a fresh folder (no shared path between requests)."""
    folder = Path(tempfile.mkdtemp(prefix="memdemo-run-"))
    path = folder / f"memdemo-{trace.run.method}-seed{trace.run.seed}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("trace.json", trace.to_json() + "\n")
        for name, image in images.items():
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            bundle.writestr(f"{name}.png", buffer.getvalue())
    return str(path)


@dataclass
class LiveRun:
    """Drives a Generation and emits a Frame at most every `interval` seconds, and always at the end."""

    generation: Generation
    verdicts: Verdicts
    interval: float = 0.5
    strip: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def frames(self) -> Iterator[Frame]:
        """Frames spaced by `interval` of sampling, or by OVERHEAD_FACTOR × what the last frame cost (drawing it plus
        the consumer's time to send it), so that streaming adds at most ~1/OVERHEAD_FACTOR to the run."""
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
                gap = max(self.interval, OVERHEAD_FACTOR * (last - started))
        yield self._final()

    def _previews(self, update: StepUpdate) -> tuple[np.ndarray, np.ndarray]:
        backend = self.generation.backend
        return preview(backend, update.x0_baseline), preview(backend, update.x0_mitigated)

    def _plots(self) -> tuple[Figure, Figure]:
        trace, steps = self.generation.trace, self.generation.request.steps
        return panel_figure(trace, draw_norm, steps), panel_figure(trace, draw_similarity, steps)

    def _frame(self, update: StepUpdate) -> Frame:
        prompt = self.generation.request.prompt
        latest = self.strip[-1]
        steps = {"baseline": update.baseline, "mitigated": update.mitigated}
        norm_plot, similarity_plot = self._plots()
        return Frame(
            images={"baseline": latest[0], "mitigated": latest[1]},
            nearest={name: self.verdicts.nearest_image(step.nearest_id) for name, step in steps.items()},
            verdicts={name: self.verdicts.describe(step, prompt, done=False) for name, step in steps.items()},
            norm_plot=norm_plot,
            similarity_plot=similarity_plot,
            strip=strip_image(self.strip),
        )

    def _final_verdict(self, final: Final, image: np.ndarray) -> str:
        """The guide's verdict and, on its own Markdown line, the independent copydet check when there is one."""
        prompt = self.generation.request.prompt
        lines = [self.verdicts.describe(final, prompt, done=True), self.verdicts.independent_check(image, prompt)]
        return "  \n".join(line for line in lines if line)

    def _final(self) -> Frame:
        generation = self.generation
        trace = generation.trace
        finals: dict[str, Trajectory] = {"baseline": trace.baseline, "mitigated": trace.mitigated}
        norm_plot, similarity_plot = self._plots()
        return Frame(
            images={name: upscale(image) for name, image in generation.images.items()},
            nearest={name: self.verdicts.nearest_image(t.final.nearest_id) for name, t in finals.items()},
            verdicts={name: self._final_verdict(t.final, generation.images[name]) for name, t in finals.items()},
            norm_plot=norm_plot,
            similarity_plot=similarity_plot,
            strip=strip_image(self.strip),
            summary=summarize(trace, self.verdicts.threshold),
            bundle=write_bundle(trace, generation.images),
        )
