"""copydet: EmojiMem's object-level copy descriptor, a small CNN → unit 128-d embedding compared by cosine (the role
SSCD plays in the AMG paper, Eq. 9), trained contrastively by `python -m memdemo train-copydet`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from memdemo.errors import MemdemoError
from memdemo.paths import assets_dir
from memdemo.reference.features import Metric, register_feature

ASSETS = assets_dir(check=False)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "copydet.safetensors"
CALIBRATION_FILE = "calibration.json"
# The descriptor that scores copies, and an independent one (another seed, noise-aware, blurred input) that G_sim
# follows: guiding on a descriptor and scoring with the same one rewards fooling it (docs/decisions.md §9).
DESCRIPTORS = {"copydet": "emojimem-copydet", "copydet-guide": "emojimem-copydet-guide"}


class CopydetError(MemdemoError, ValueError):
    """Missing, mismatched or corrupted copydet weights."""


@dataclass(frozen=True)
class CopydetConfig:
    """Architecture: three conv stages of `width`·(1, 2, 4) channels, a fixed Gaussian input blur, a 2-layer head."""

    image_size: int = 32
    width: int = 24
    dim: int = 128
    input_blur: float = 0.0


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of radius ⌈2σ⌉."""
    radius = max(1, int(2 * sigma + 0.999))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel with replicated borders (differentiable)."""
    kernel = gaussian_kernel(sigma).to(images)
    radius, channels = len(kernel) // 2, images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    return F.conv2d(F.conv2d(padded, horizontal, groups=channels), vertical, groups=channels)


def _stage(channels_in: int, channels_out: int) -> nn.Sequential:
    """Two 3×3 convolutions with GroupNorm and SiLU (smooth, so ∇σ is smooth too)."""
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1),
        nn.GroupNorm(8, channels_out),
        nn.SiLU(),
        nn.Conv2d(channels_out, channels_out, 3, padding=1),
        nn.GroupNorm(8, channels_out),
        nn.SiLU(),
    )


class CopyDetector(nn.Module):
    """Images in [0, 1] (N, 3, S, S) → L2-normalised embeddings (N, dim)."""

    def __init__(self, config: CopydetConfig = CopydetConfig()) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.body = nn.Sequential(
            _stage(3, width),
            nn.AvgPool2d(2),
            _stage(width, 2 * width),
            nn.AvgPool2d(2),
            _stage(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(16 * width, 4 * width), nn.SiLU(), nn.Linear(4 * width, config.dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if self.config.input_blur > 0:
            images = gaussian_blur(images, self.config.input_blur)
        return F.normalize(self.head(self.body(images * 2 - 1)), dim=-1)


def train_copydet_command(folder: Path) -> str:
    noise_aware = " --noise-aware --input-blur 1.0 --seed 1" if folder.name.endswith("guide") else ""
    return f"python -m memdemo train-copydet --out {folder}{noise_aware}"


def save_copydet(folder: Path, model: CopyDetector, card: dict) -> None:
    """Write config.json (architecture + training card) and copydet.safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(folder / WEIGHTS_FILE))
    config = {"architecture": asdict(model.config), "card": card}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def load_copydet(folder: Path) -> CopyDetector:
    """Read a saved descriptor, with a message naming the training command for missing or damaged files."""
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise CopydetError(f"no copydet weights in {folder}; train them with `{train_copydet_command(folder)}`")
    try:
        config = CopydetConfig(**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))["architecture"])
        state = load_file(str(folder / WEIGHTS_FILE))
        model = CopyDetector(config)
        model.load_state_dict(state)
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CopydetError(f"{folder / CONFIG_FILE} does not describe a copydet model ({error})") from error
    except (SafetensorError, OSError, RuntimeError) as error:
        raise CopydetError(
            f"{folder / WEIGHTS_FILE} is truncated or does not match {CONFIG_FILE} ({error}); "
            f"retrain: `{train_copydet_command(folder)}`"
        ) from error
    return model.eval().requires_grad_(False)


def copydet_threshold(folder: Path) -> float:
    """The cosine above which a sample counts as a copy, from the descriptor's calibration.json."""
    path = folder / CALIBRATION_FILE
    if not path.is_file():
        raise CopydetError(f"{path} is missing; calibrate with `{train_copydet_command(folder)}`")
    return float(json.loads(path.read_text(encoding="utf-8"))["threshold"])


class CopydetFeature:
    """A trained copydet descriptor as a reference-index feature (cosine metric, AMG Eq. 9)."""

    metric: Metric = "cosine"

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.model = load_copydet(folder)
        self.threshold = copydet_threshold(folder)

    def dim(self, image_size: int) -> int:
        return self.model.config.dim

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if next(self.model.parameters()).device != images.device:
            self.model.to(images.device)
        return self.model(images.float())


for _name, _folder in DESCRIPTORS.items():
    register_feature(_name, lambda name=_name, folder=_folder: CopydetFeature(name, ASSETS / folder))
