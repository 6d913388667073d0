"""The models the demo offers, loaded once and shared read-only by every request, each behind its own semaphore."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from huggingface_hub import try_to_load_from_cache

from memdemo.backends import Backend, load_backend
from memdemo.backends.emojimem import EmojiMemBackend
from memdemo.backends.stable_diffusion import DEFAULT_REPO
from memdemo.data.emojimem import DEFAULT_DIR, EmojiMem
from memdemo.evaluation.scoring import PIXEL_INDEX, CopydetScorer
from memdemo.guidance import SimilarityMonitor
from memdemo.guidance.thresholds import EMOJIMEM_PIXEL_THRESHOLD
from memdemo.paths import DEFAULT_GUIDE_INDEX
from memdemo.reference.index import ReferenceIndex
from memdemo.ui.judge import Judge
from memdemo.ui.live import Verdicts

LABELS = {
    "emojimem-v2-ddpm": "EmojiMem v2 (memorizes exactly)",
    "emojimem-ddpm": "EmojiMem v1 DDPM (memorizes, speckled)",
    "emojimem-ambient": "EmojiMem v1 Ambient (trained on noisy copies)",
    "emojimem-random": "EmojiMem, random weights (tests)",
    "sd-v1-4": "Stable Diffusion v1.4",
}


def stable_diffusion_available() -> bool:
    """True when SD v1.4's weights are in the local Hugging Face cache (the demo never downloads at request time)."""
    return isinstance(try_to_load_from_cache(DEFAULT_REPO, "unet/config.json"), str)


def offered_models() -> list[str]:
    """The demo's model choices: EmojiMem v2, the v1 twins, and SD v1.4 only when its weights can load offline."""
    models = ["emojimem-v2-ddpm", "emojimem-ddpm", "emojimem-ambient"]
    return [*models, "sd-v1-4"] if stable_diffusion_available() else models


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

    def judge(self, level: str = "object") -> tuple[SimilarityMonitor | None, Verdicts]:
        """The monitor and verdicts of one similarity level (none for models without a reference index)."""
        return self.similarities.get(level, (None, NO_INDEX))


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
