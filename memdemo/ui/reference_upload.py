"""Reference images uploaded in the demo: checked, indexed for one browser session, and used as the similarity
reference (σ_t, AMG's G_sim, the verdicts) of a model the registry has no reference for, such as Stable Diffusion."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from memdemo.backends.base import Backend
from memdemo.errors import MemdemoError
from memdemo.guidance import SimilarityMonitor
from memdemo.guidance.thresholds import official_threshold
from memdemo.reference.cli import FOLDER_IMAGE_SIZE, image_set, read_image
from memdemo.reference.features import Feature, embed_images
from memdemo.reference.index import ReferenceIndex
from memdemo.ui.judge import Judgement
from memdemo.ui.live import Verdicts

UPLOAD_FEATURE = "dinov2"
MAX_FILES = 64
MAX_FILE_BYTES = 10 * 2**20  # as Gradio reads the max_file_size "10mb" of memdemo.ui.server
MAX_PIXELS = 16_000_000
CLI_FIX = (
    "put the images in a folder and run `python -m memdemo index build --images FOLDER --features dinov2 --out INDEX`, "
    "then `python -m memdemo generate --index INDEX`"
)

LOG = logging.getLogger(__name__)


class UploadError(MemdemoError, ValueError):
    """An upload that cannot become a reference set; the message names the limit and the fix."""


@dataclass(frozen=True)
class ReferenceJudgement(Judgement):
    """A Judgement against an uploaded reference: its descriptor is named, and τ is the official AMG λ_0, not a
    calibrated copy threshold."""

    descriptor: str = UPLOAD_FEATURE

    def comparison(self) -> str:
        sign = ">" if self.copy else "≤"
        measured = f"{self.descriptor} cosine {self.similarity:.2f} {sign} τ = {self.threshold:.2f}"
        return f"{measured} (the official AMG λ at t = 0, not a calibrated copy threshold)"


@dataclass(frozen=True, eq=False)  # hashed by identity, as Gradio hashes session state
class SessionReference:
    """One session's uploaded images (as stored, uint8 (N, S, S, 3)), unique by content, and their index."""

    index: ReferenceIndex
    images: np.ndarray
    duplicates: int

    def judge(self, backend: Backend) -> tuple[SimilarityMonitor, Verdicts]:
        """A similarity monitor for `backend` on this reference, and verdicts from the same feature."""
        threshold = official_threshold(0)
        judge = ReferenceJudge(self, backend.device, threshold)
        return SimilarityMonitor(backend, self.index), Verdicts(threshold, self.index.feature.name, judge)

    def describe(self) -> str:
        """What the page says once the reference is built."""
        merged = f" ({self.duplicates} duplicate files counted as copies)" if self.duplicates else ""
        count = len(self.index)
        return (
            f"Reference set for this session: {count} image{'s' * (count != 1)}{merged}, {self.index.feature.name} "
            "features, captions from the file names. σ_t, AMG and the verdicts of a model without a training-set "
            f"reference now use it; it is dropped when you close the page. To use it from the command line, {CLI_FIX}."
        )


class ReferenceJudge:
    """Judges images as `Judge` does, against an uploaded reference with its own feature; there are no own images."""

    def __init__(self, reference: SessionReference, device: torch.device, threshold: float) -> None:
        self.reference = reference
        self.device = device
        self.threshold = threshold

    def own_image(self, prompt: str) -> None:
        return None

    def nearest_image(self, judgement: Judgement) -> np.ndarray:
        return self.reference.images[judgement.nearest_id]

    def judge(self, image: np.ndarray, prompt: str) -> ReferenceJudgement:
        """The feature's cosine of one uint8 image to its nearest reference image, against τ."""
        index = self.reference.index
        match = index.match(embed_images(index.feature, image[None], device=self.device))[0]
        name = index.feature.name
        return ReferenceJudgement(match.similarity, self.threshold, match.row, match.caption, descriptor=name)


def checked_files(paths: list[str]) -> list[Path]:
    """The uploaded files if there are 1 to MAX_FILES, none empty and none over MAX_FILE_BYTES, else UploadError."""
    if not paths:
        raise UploadError("no reference images were uploaded; upload one or more PNG, JPEG or WebP images")
    if len(paths) > MAX_FILES:
        raise UploadError(
            f"{len(paths)} files uploaded; a session's reference set holds at most {MAX_FILES} images. Upload at most "
            f"{MAX_FILES} (the training images of the prompts you try), or for a larger set {CLI_FIX}"
        )
    files = [Path(path) for path in paths]
    for path in files:
        size = path.stat().st_size
        if size == 0:
            raise UploadError(f"{path.name} is empty (0 bytes); remove it and upload the image again")
        if size > MAX_FILE_BYTES:
            raise UploadError(
                f"{path.name} is {size / 2**20:.1f} MB; each reference image is limited to {MAX_FILE_BYTES // 2**20} "
                "MB, so resize or recompress it (e.g. as JPEG) and upload it again"
            )
    return files


def build_reference(
    paths: list[str], feature: str | Feature = UPLOAD_FEATURE, device: str | torch.device = "cpu"
) -> SessionReference:
    """Check the uploaded files, read each as an image (refusing any that is not one, or is over MAX_PIXELS), and
    index them with `feature` on `device`, as `index build --images` does for a folder."""
    files = checked_files(paths)
    images = []
    for path in files:
        try:
            images.append(read_image(path, FOLDER_IMAGE_SIZE, MAX_PIXELS, path.name))
        except MemdemoError as error:
            raise UploadError(str(error)) from error
    names = [path.name for path in files]
    found = image_set(images, names, [Path(name).stem for name in names], [])
    index = ReferenceIndex.from_images(found.images, found.entries, feature, device)
    return SessionReference(index, found.images, found.duplicates)


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """A refused upload (or an encoder that cannot load) becomes a message in the page and one log line; the
    session keeps the reference it had."""
    try:
        yield
    except MemdemoError as error:
        LOG.warning("reference upload refused: %s", error)
        raise gr.Error(str(error), print_exception=False) from error
