"""Train EmojiMem on its training split (duplicates repeated as recorded) with the DDPM or the Ambient objective, in
pixel space or on the latents of a trained EmojiMem autoencoder (docs/training.md)."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from memdemo.backends.emojimem import CONFIG_FILE, SCHEDULE_CONFIG, load_autoencoder, save_emojimem, unet_config
from memdemo.backends.text_encoder import MiniLMTextEncoder
from memdemo.data.emojimem import EmojiMem
from memdemo.errors import MemdemoError
from memdemo.training.autoencoder import WEIGHTS_FILE as AUTOENCODER_WEIGHTS
from memdemo.training.autoencoder import training_pixels
from memdemo.training.loop import LoopState, run_card, run_loop, settings_from
from memdemo.training.objectives import PREDICTIONS, diffusion_loss, nature_sigma2, noised_inputs, prediction_target

OBJECTIVES = ("ddpm", "ambient")
DEFAULT_T_NATURE = 300


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters (docs/training.md: lr 1e-3 at batch 64, EMA with warm-up; the recipe study chose the rest)."""

    objective: str = "ddpm"
    t_nature: int | None = None
    prediction: str = "epsilon"
    min_snr_gamma: float | None = None
    autoencoder: str | None = None
    steps: int = 20_000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    max_cpu_minutes: float | None = None
    stop_at: int | None = None


@dataclass
class TrainingData:
    """Unique training images in [−1, 1], their caption states, and one index per training entry (copies repeated)."""

    images: torch.Tensor
    embeddings: torch.Tensor
    uncond: torch.Tensor
    entries: torch.Tensor
    nature: torch.Tensor | None = None

    @classmethod
    def from_dataset(cls, dataset: EmojiMem, encoder: MiniLMTextEncoder) -> TrainingData:
        records = [r for r in dataset.records if r.split == "train"]
        if not records:
            raise MemdemoError(
                "the dataset has no training split; rebuild it with `python -m memdemo data build-emojimem`"
            )
        embeddings = torch.cat(
            [encoder([r.caption for r in records[i : i + 256]]).embeddings for i in range(0, len(records), 256)]
        )
        entries = torch.repeat_interleave(torch.arange(len(records)), torch.tensor([r.copies for r in records]))
        return cls(training_pixels(dataset), embeddings, encoder([""]).embeddings, entries)

    def sample(self, size: int, generator: torch.Generator, caption_dropout: float, timesteps: int, device: str):
        """A random batch: clean images, their noisy copies (Ambient), caption states with dropout, t and noise."""
        rows = self.entries[torch.randint(len(self.entries), (size,), generator=generator)]
        t = torch.randint(0, timesteps, (size,), generator=generator)
        noise = torch.randn((size, *self.images.shape[1:]), generator=generator)
        drop = torch.rand(size, generator=generator) < caption_dropout
        states = torch.where(drop[:, None, None], self.uncond, self.embeddings[rows])
        nature = self.nature[rows].to(device) if self.nature is not None else None
        return self.images[rows].to(device), nature, states.to(device), t.to(device), noise.to(device)


def nature_copies(images: torch.Tensor, t_nature: int, alphas_cumprod: torch.Tensor, seed: int) -> torch.Tensor:
    """One fixed noisy copy x_{t_n} per unique image (duplicates share it, docs/decisions.md §2)."""
    generator = torch.Generator().manual_seed(seed + 1)
    sigma2 = nature_sigma2(t_nature, alphas_cumprod)
    return (1 - sigma2) ** 0.5 * images + sigma2**0.5 * torch.randn(images.shape, generator=generator)


@torch.no_grad()
def encode_latents(autoencoder: AutoencoderKL, pixels: torch.Tensor) -> torch.Tensor:
    """Posterior means of the training images times the autoencoder's scaling factor: the latent "images"."""
    scale = autoencoder.config.scaling_factor
    return torch.cat(
        [autoencoder.encode(pixels[i : i + 256]).latent_dist.mode() * scale for i in range(0, len(pixels), 256)]
    )


def autoencoder_fingerprint(folder: str | None) -> str | None:
    """The autoencoder a checkpoint was trained on, by content (its weights' SHA-256), so that a resumed run may find
    the same autoencoder in another folder but never another autoencoder."""
    if folder is None:
        return None
    weights = Path(folder) / AUTOENCODER_WEIGHTS
    if not weights.is_file():
        raise MemdemoError(
            f"no autoencoder in {folder}; train one with `python -m memdemo train-autoencoder --out DIR`"
        )
    return "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()


def resolve_t_nature(config: TrainConfig) -> int | None:
    """Ambient's t_n as asked (0 is allowed and means DDPM); None for the DDPM objective."""
    if config.objective != "ambient":
        return None
    t_nature = DEFAULT_T_NATURE if config.t_nature is None else config.t_nature
    if not 0 <= t_nature < 1000:
        raise MemdemoError(f"--t-nature must be between 0 and 999, got {t_nature}")
    return t_nature


def check_config(config: TrainConfig) -> None:
    """Refuse settings that cannot train, with the allowed values."""
    if config.objective not in OBJECTIVES:
        raise MemdemoError(f"unknown objective {config.objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    if config.prediction not in PREDICTIONS:
        raise MemdemoError(f"unknown prediction {config.prediction!r}; choose one of: {', '.join(PREDICTIONS)}")
    if config.min_snr_gamma is not None and not config.min_snr_gamma > 0:
        raise MemdemoError(f"--min-snr-gamma must be positive, got {config.min_snr_gamma}")
    if not 0 <= config.caption_dropout < 1:
        raise MemdemoError(f"--caption-dropout must be at least 0 and below 1, got {config.caption_dropout}")


def train(config: TrainConfig, dataset: EmojiMem, out: Path, device: str = "cpu", progress: bool = True) -> dict:
    """Train (resuming from out/checkpoint if present); writes the EMA model to out/ at every checkpoint."""
    check_config(config)
    t_nature = resolve_t_nature(config)
    fingerprint = autoencoder_fingerprint(config.autoencoder)
    autoencoder = None
    if config.autoencoder is not None:
        autoencoder = load_autoencoder(Path(config.autoencoder)).to(device).eval()
    torch.manual_seed(config.seed)
    channels = autoencoder.config.latent_channels if autoencoder else 3
    size = 32 // 2 ** (len(autoencoder.config.block_out_channels) - 1) if autoencoder else 32
    model = UNet2DConditionModel(**unet_config(size, channels)).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    alphas = DDPMScheduler.from_config(SCHEDULE_CONFIG).alphas_cumprod
    data = TrainingData.from_dataset(dataset, MiniLMTextEncoder(torch.device(device)))
    if autoencoder is not None:
        data.images = encode_latents(autoencoder, data.images.to(device)).cpu()
    if t_nature is not None:
        data.nature = nature_copies(data.images, t_nature, alphas, config.seed)
    alphas = alphas.to(device)
    generator = torch.Generator().manual_seed(config.seed)

    def train_step(step: int) -> torch.Tensor:
        x0, x_nature, states, t, noise = data.sample(
            config.batch_size, generator, config.caption_dropout, len(alphas), device
        )
        x_t = noised_inputs(x0, x_nature, t, noise, t_nature, alphas)
        output = model(x_t, t, encoder_hidden_states=states).sample
        target = prediction_target(x0, noise, alphas[t], config.prediction)
        loss = diffusion_loss(
            output, x_t, target, x_nature, t, t_nature, alphas, config.prediction, config.min_snr_gamma
        )
        return loss.mean()

    def write(state: LoopState) -> None:
        card = {
            "objective": config.objective,
            "t_nature": t_nature,
            "sigma_ve_nature": None if t_nature is None else ((1 - alphas[t_nature]) / alphas[t_nature]).sqrt().item(),
            "prediction": config.prediction,
            "space": "latent" if autoencoder else "pixel",
            **run_card(state, config, device),
        }
        save_emojimem(out, ema, card, config.prediction, autoencoder)

    settings = settings_from(config, config.objective)
    recipe = {**asdict(config), "t_nature": t_nature, "autoencoder": fingerprint}
    run_loop(settings, recipe, model, ema, optimizer, train_step, generator, out, write, progress)
    return json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))["card"]
