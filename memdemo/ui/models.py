"""The models the demo offers, loaded once and shared read-only by every request, each behind its own semaphore."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from memdemo.backends import SHIPPED_EMOJIMEM, Backend, load_backend, sd_availability
from memdemo.backends.emojimem import WEIGHTS_FILE, EmojiMemBackend
from memdemo.data.emojimem import DEFAULT_DIR, EmojiMem
from memdemo.evaluation.scoring import PIXEL_INDEX, CopydetScorer
from memdemo.guidance import SimilarityMonitor
from memdemo.guidance.thresholds import EMOJIMEM_PIXEL_THRESHOLD
from memdemo.paths import DEFAULT_GUIDE_INDEX
from memdemo.reference.index import ReferenceIndex
from memdemo.ui.judge import Judge
from memdemo.ui.live import Verdicts
from memdemo.ui.reference_upload import SessionReference

LABELS = {
    "emojimem-v2-ddpm": "EmojiMem v2 (memorizes exactly)",
    "emojimem-ddpm": "EmojiMem v1 DDPM (memorizes, speckled)",
    "emojimem-ambient": "EmojiMem v1 Ambient (trained on noisy copies)",
    "emojimem-random": "EmojiMem, random weights (tests)",
    "sd-v1-4": "Stable Diffusion v1.4",
}


EMOJIMEM_MODELS = SHIPPED_EMOJIMEM


def offered_models() -> list[str]:
    """The demo's model choices: EmojiMem v2, the v1 twins, and SD v1.4 when a GPU is present (it downloads on
    first use) or its weights are already in the local cache."""
    return [*EMOJIMEM_MODELS, "sd-v1-4"] if sd_availability().offered else list(EMOJIMEM_MODELS)


def has_reference(model: str) -> bool:
    """Whether the demo has a training-set reference for `model`: σ_t, verdicts and AMG need one."""
    return model in EMOJIMEM_MODELS or model == "emojimem-random"


def is_stable_diffusion(model: str) -> bool:
    """Whether `model` is a Stable Diffusion alias, Hub id or folder (not EmojiMem), as `load_backend` decides."""
    return not has_reference(model) and not (Path(model) / WEIGHTS_FILE).is_file()


def model_note(model: str, uploaded: bool = False) -> str:
    """One line under the model choice: what it is, for Stable Diffusion what it costs, and whether AMG can run (with
    `uploaded` reference images of this session, or how to get a reference)."""
    if has_reference(model):
        return ""
    sd = sd_availability().message if model == "sd-v1-4" else ""
    if uploaded:
        return f"{sd} σ_t, AMG and the verdicts use the reference images you uploaded (this session only).".strip()
    return (
        f"{sd} AMG is unavailable here: it needs a reference set of the model's training images. Upload reference "
        "images below, or build an index with `python -m memdemo index build --images FOLDER --features dinov2 "
        "--out INDEX` and pass it to `memdemo generate --index INDEX`; the transition methods and the d_t plot work "
        "without one."
    ).strip()


# σ_t at the object level (the copydet-guide descriptor, EmojiMem's default) or at the pixel level (nL2, the contrast
# that shows why the AMG paper used SSCD on LAION: pixel G_sim recolours a copy).
SIMILARITY_INDEXES = {"object": DEFAULT_GUIDE_INDEX, "pixel": PIXEL_INDEX}
NO_INDEX = Verdicts(None, "none")


@dataclass
class LoadedModel:
    """A backend with a similarity monitor and copy verdicts per similarity level, and a limit on concurrent runs."""

    backend: Backend
    similarities: dict[str, tuple[SimilarityMonitor, Verdicts]]
    slots: threading.BoundedSemaphore

    def judge(
        self, level: str = "object", uploaded: SessionReference | None = None
    ) -> tuple[SimilarityMonitor | None, Verdicts]:
        """The monitor and verdicts of one similarity level; for a model without a reference index, those of the
        session's `uploaded` reference images, else none."""
        if level in self.similarities or uploaded is None:
            return self.similarities.get(level, (None, NO_INDEX))
        return uploaded.judge(self.backend)


class ModelRegistry:
    """Loads each model on first use; later requests share it (weights are never mutated by a run). Each model has
    its own loading lock, so a slow first load of one model never holds up requests for another."""

    def __init__(self, device: str | None = None, concurrency: int | None = None) -> None:
        self.device = device
        self.concurrency = concurrency or int(os.environ.get("MEMDEMO_CONCURRENCY", "1"))
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, threading.Lock] = {}  # one lock per model name, held while that model loads
        self._lock = threading.Lock()  # guards the two dictionaries only, never held during a load

    def get(self, name: str) -> LoadedModel:
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:
            with self._lock:
                if name in self._loaded:  # another request loaded it while this one waited
                    return self._loaded[name]
            model = self._load(name)
            with self._lock:
                self._loaded[name] = model
            return model

    def _load(self, name: str) -> LoadedModel:
        backend = load_backend(name, self.device)
        slots = threading.BoundedSemaphore(self.concurrency)
        if not isinstance(backend, EmojiMemBackend):
            return LoadedModel(backend, {}, slots)
        judge = Judge(CopydetScorer.load(), EmojiMem.load(DEFAULT_DIR))
        similarities = {}
        for level, folder in SIMILARITY_INDEXES.items():
            monitor = SimilarityMonitor(backend, ReferenceIndex.load(folder))
            threshold = getattr(monitor.index.feature, "threshold", EMOJIMEM_PIXEL_THRESHOLD)
            similarities[level] = (monitor, Verdicts(threshold, monitor.index.feature.name, judge))
        return LoadedModel(backend, similarities, slots)
