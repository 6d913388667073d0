"""Models behind the sampling loop, by name: the built-in EmojiMem twins and Stable Diffusion."""

from __future__ import annotations

from pathlib import Path

import torch

from memdemo.backends.base import SCHEDULERS, Backend, ModelError, TextEncoding
from memdemo.backends.emojimem import WEIGHTS_FILE, EmojiMemBackend
from memdemo.backends.stable_diffusion import ALIASES, DEFAULT_REPO, Availability, StableDiffusionBackend, download_size
from memdemo.backends.stable_diffusion import availability as sd_availability
from memdemo.paths import assets_dir

MODELS = {
    "emojimem-v2-ddpm": (
        "EmojiMem v2: a tiny latent diffusion model (own autoencoder, v-prediction, min-SNR-5) that copies its "
        "duplicated emoji exactly"
    ),
    "emojimem-ddpm": "EmojiMem v1 trained with the plain DDPM loss in pixel space (memorizes on purpose)",
    "emojimem-ambient": "EmojiMem v1 trained with the Ambient loss (noisy data above t_n)",
    "emojimem-random": "the EmojiMem architecture with random weights (for tests)",
    "sd-v1-4": (
        f"Stable Diffusion v1.4 ({DEFAULT_REPO}, {download_size(DEFAULT_REPO)} on first use); "
        "or pass any diffusers SD repo id or folder"
    ),
}
SHIPPED_EMOJIMEM = ("emojimem-v2-ddpm", "emojimem-ddpm", "emojimem-ambient")
MODEL_HELP = f"{', '.join(MODELS)}; or a folder written by `memdemo train`; or an SD repo id / folder"


def available_devices() -> list[str]:
    return ["cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]


def checked_device(device: str | None) -> str:
    """The device to run on (CUDA when present by default), or a ModelError that names the available ones."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ModelError(
            f"--device {device!r} is not a device; choose one of {', '.join(available_devices())}"
        ) from error
    if parsed.type == "cuda" and (not torch.cuda.is_available() or (parsed.index or 0) >= torch.cuda.device_count()):
        raise ModelError(f"--device {device}: no such CUDA device here; available: {', '.join(available_devices())}")
    if parsed.type not in ("cpu", "cuda"):
        raise ModelError(f"--device {device}: memdemo runs on cpu or cuda; available: {', '.join(available_devices())}")
    return device


def load_backend(model: str, device: str | None = None) -> Backend:
    """The backend called `model`: a name of MODELS, a folder `memdemo train` wrote, or an SD repo id / folder."""
    device = checked_device(device)
    if model in SHIPPED_EMOJIMEM:
        return EmojiMemBackend.load(assets_dir() / model, device)
    if model == "emojimem-random":
        return EmojiMemBackend.random(device=device)
    if model in ALIASES:
        return StableDiffusionBackend.from_pretrained(model, device)
    if (Path(model) / WEIGHTS_FILE).is_file():
        return EmojiMemBackend.load(model, device)
    if Path(model).is_dir() or model.count("/") == 1:
        return StableDiffusionBackend.from_pretrained(model, device)
    choices = "; ".join(f"{name}: {about}" for name, about in MODELS.items())
    raise ModelError(f"unknown model {model!r}; choose one of {choices}")


__all__ = [
    "MODELS",
    "MODEL_HELP",
    "SCHEDULERS",
    "Availability",
    "Backend",
    "ModelError",
    "TextEncoding",
    "load_backend",
    "sd_availability",
]
