"""Image features for the reference index, by name: each maps images in [0, 1] to vectors, differentiably.

Besides the pixel feature and EmojiMem's copydet descriptors, two pretrained image encoders from the Hugging Face
Hub index any folder of images (a reference set of your own for Stable Diffusion): `dinov2` (facebook/dinov2-small)
and `clip` (openai/clip-vit-base-patch32). They are downloaded on first use (safetensors only) and compared by
cosine similarity; G_sim differentiates through them like through any other feature."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from memdemo.errors import MemdemoError

Metric = Literal["l2", "cosine"]


class Feature(Protocol):
    """A differentiable image descriptor: (N, 3, H, W) in [0, 1] → (N, D)."""

    name: str
    metric: Metric

    def dim(self, image_size: int) -> int: ...

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class PixelFeature:
    """Flattened RGB in [−1, 1], compared by ℓ2 (the AMG paper's pixel level, Eq. 8)."""

    name = "pixel"
    metric: Metric = "l2"

    def dim(self, image_size: int) -> int:
        return 3 * image_size * image_size

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images * 2 - 1).flatten(1)


class FeatureError(MemdemoError, ValueError):
    """A feature whose model cannot be loaded; the message names the fix."""


@dataclass(frozen=True)
class EncoderSpec:
    """A pretrained image encoder on the Hub and the input normalisation it was trained with."""

    repo: str
    kind: Literal["dinov2", "clip"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
HUB_ENCODERS = {
    "dinov2": EncoderSpec("facebook/dinov2-small", "dinov2", IMAGENET_MEAN, IMAGENET_STD),
    "clip": EncoderSpec("openai/clip-vit-base-patch32", "clip", CLIP_MEAN, CLIP_STD),
}


@functools.cache
def load_encoder(spec: EncoderSpec) -> torch.nn.Module:
    """The encoder's weights from the Hub (downloaded on first use, then cached), safetensors only, frozen."""
    from huggingface_hub import constants
    from transformers import CLIPVisionModelWithProjection, Dinov2Model

    model_class = Dinov2Model if spec.kind == "dinov2" else CLIPVisionModelWithProjection
    try:
        model = model_class.from_pretrained(spec.repo, use_safetensors=True)
    except (OSError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise FeatureError(
            f"cannot load the {spec.kind} image encoder {spec.repo} ({first}). It downloads on first use when the "
            f"Hugging Face Hub is reachable; offline, fetch it on a connected machine with `hf download {spec.repo} "
            f'--include "*.safetensors" "*.json"` and copy its Hugging Face cache to {constants.HF_HUB_CACHE} here'
        ) from error
    return model.eval().requires_grad_(False)


class ImageEncoderFeature:
    """A pretrained ViT's image embedding (DINOv2's CLS token after the final norm, or CLIP's projected image
    embedding), unit length, compared by cosine (AMG Eq. 9). Images are resized to the encoder's input size and
    normalised as in its training; every operation is differentiable, so G_sim's gradient reaches x̂0."""

    metric: Metric = "cosine"
    batch_size = 32  # a ViT at 224 px: batches of 256 would need gigabytes on a CPU

    def __init__(self, name: str, spec: EncoderSpec, model: torch.nn.Module | None = None) -> None:
        self.name = name
        self.spec = spec
        self._model = model.eval().requires_grad_(False) if model is not None else None

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = load_encoder(self.spec)
        return self._model

    @property
    def input_size(self) -> int:
        return int(self.model.config.image_size)

    def dim(self, image_size: int) -> int:
        config = self.model.config
        return int(config.hidden_size if self.spec.kind == "dinov2" else config.projection_dim)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        model = self.model
        if next(model.parameters()).device != images.device:
            model.to(images.device)
        size = self.input_size
        images = images.float()
        if images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.spec.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.std, device=images.device).view(1, 3, 1, 1)
        outputs = model(pixel_values=(images - mean) / std)
        vectors = outputs.pooler_output if self.spec.kind == "dinov2" else outputs.image_embeds
        return F.normalize(vectors.float(), dim=-1)


_REGISTRY: dict[str, Callable[[], Feature]] = {"pixel": PixelFeature}
for _name, _spec in HUB_ENCODERS.items():
    _REGISTRY[_name] = functools.partial(ImageEncoderFeature, _name, _spec)


def register_feature(name: str, factory: Callable[[], Feature]) -> None:
    """Make a feature available to indexes and the CLI under `name`."""
    _REGISTRY[name] = factory


def available_features() -> list[str]:
    """Registered feature names: those that work offline first, then the Hub encoders (downloaded on first use)."""
    return sorted(_REGISTRY, key=lambda name: (name in HUB_ENCODERS, name))


def get_feature(name: str) -> Feature:
    """The feature called `name`, or an error that lists the registered ones."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown feature {name!r}; choose one of: {', '.join(available_features())}")
    return _REGISTRY[name]()


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float32 (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float().div(255)


def embed_images(
    feature: Feature, images: np.ndarray, batch_size: int | None = None, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Feature vectors (float32, C-contiguous) of uint8 images, computed on `device` in batches without gradients (of
    the feature's own `batch_size` when it has one, else 256)."""
    batch_size = batch_size or getattr(feature, "batch_size", 256)
    with torch.no_grad():
        chunks = [
            feature(images_to_tensor(images[i : i + batch_size]).to(device)).cpu()
            for i in range(0, len(images), batch_size)
        ]
    return np.ascontiguousarray(torch.cat(chunks).numpy(), dtype=np.float32)
