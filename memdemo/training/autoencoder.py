"""The EmojiMem autoencoder: a small diffusers AutoencoderKL (f = 2, 4×16×16 latents) trained to reconstruct the
training emoji almost exactly, so that a latent EmojiMem can still copy them pixel for pixel (docs/training.md)."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from memdemo.data.emojimem import EmojiMem
from memdemo.errors import MemdemoError
from memdemo.training.loop import LoopState, run_card, run_loop, settings_from

# Two levels (32×32 → 16×16), no attention: 0.8 M parameters, ≈ 4 ms to decode a CFG pair on 2 CPU threads.
AUTOENCODER_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 16,
    "sample_size": 32,
    "mid_block_add_attention": False,
}
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """L1 reconstruction plus a tiny KL term (as in Stable Diffusion's VAE, without the adversarial loss)."""

    steps: int = 6_000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    ema_decay: float = 0.999
    kl_weight: float = 1e-6
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 25
    max_cpu_minutes: float | None = None


def training_pixels(dataset: EmojiMem) -> torch.Tensor:
    """The unique training-split images in [−1, 1], (N, 3, S, S); the holdout stays unseen."""
    ids = dataset.ids("train")
    if not ids:
        raise MemdemoError("the dataset has no training split; rebuild it with `python -m memdemo data build-emojimem`")
    return torch.from_numpy(dataset.images[ids]).permute(0, 3, 1, 2).float() / 127.5 - 1


def reconstruction_loss(model: AutoencoderKL, x: torch.Tensor, kl_weight: float) -> torch.Tensor:
    """Mean |x − D(z)| with z drawn from the encoder's posterior, plus kl_weight · KL(q(z|x) ‖ N(0, I))."""
    posterior = model.encode(x).latent_dist
    reconstruction = model.decode(posterior.sample()).sample
    return (reconstruction - x).abs().mean() + kl_weight * posterior.kl().mean() / x[0].numel()


@torch.no_grad()
def latent_scale(model: AutoencoderKL, pixels: torch.Tensor) -> float:
    """1 / std of the posterior means over the training images: diffusion then sees unit-variance latents, like
    Stable Diffusion's scaling_factor."""
    means = torch.cat([model.encode(pixels[i : i + 256]).latent_dist.mode() for i in range(0, len(pixels), 256)])
    return float(1 / means.std())


@torch.no_grad()
def reconstruction_error(model: AutoencoderKL, pixels: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute error on the 0–1 scale of decode(mode(encode(x))), clamped like a sample."""
    errors = []
    for i in range(0, len(pixels), 256):
        x = pixels[i : i + 256]
        decoded = model.decode(model.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        errors.append(((decoded - x).abs() / 2).flatten(1).mean(1))
    return torch.cat(errors)


def save_autoencoder(folder: Path, model: AutoencoderKL, card: dict) -> None:
    """A diffusers `vae/` folder (config.json + safetensors) with the scaling factor and card in its config."""
    model.register_to_config(**{"scaling_factor": card["scaling_factor"]})
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")


def train_autoencoder(
    config: AutoencoderTrainConfig, dataset: EmojiMem, out: Path, device: str = "cpu", progress: bool = True
) -> dict:
    """Train (resuming from out/checkpoint), then write the EMA autoencoder to out/ with its measured errors."""
    torch.manual_seed(config.seed)
    model = AutoencoderKL(**AUTOENCODER_CONFIG).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    pixels = training_pixels(dataset).to(device)
    holdout = torch.from_numpy(dataset.images[dataset.ids("holdout")]).permute(0, 3, 1, 2).float() / 127.5 - 1
    generator = torch.Generator().manual_seed(config.seed)

    def train_step(step: int) -> torch.Tensor:
        rows = torch.randint(len(pixels), (config.batch_size,), generator=generator)
        flip = torch.rand(config.batch_size, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None].to(device), pixels[rows].flip(-1), pixels[rows])
        return reconstruction_loss(model, x, config.kl_weight)

    def write(state: LoopState) -> None:
        train_error = reconstruction_error(ema, pixels).cpu()
        holdout_error = reconstruction_error(ema, holdout.to(device)).cpu()
        card = {
            **run_card(state, config, device),
            "architecture": AUTOENCODER_CONFIG,
            "scaling_factor": latent_scale(ema, pixels),
            "mae_train_median": round(float(train_error.median()), 5),
            "mae_train_p90": round(float(train_error.quantile(0.9)), 5),
            "mae_holdout_median": round(float(holdout_error.median()), 5),
        }
        save_autoencoder(out, ema, card)

    settings = settings_from(config, "autoencoder")
    run_loop(settings, asdict(config), model, ema, optimizer, train_step, generator, out, write, progress)
    return json.loads((out / "card.json").read_text(encoding="utf-8"))
