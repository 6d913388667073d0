"""Train EmojiMem on its training split (duplicates repeated as recorded) with the DDPM or the Ambient objective."""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from tqdm import tqdm

from memdemo.backends.emojimem import SCHEDULE_CONFIG, UNET_CONFIG, save_emojimem
from memdemo.backends.text_encoder import MiniLMTextEncoder
from memdemo.data.emojimem import EmojiMem
from memdemo.errors import MemdemoError
from memdemo.training.checkpoint import STATE_FILE, load_checkpoint, save_checkpoint
from memdemo.training.objectives import diffusion_loss, nature_sigma2, noised_inputs

OBJECTIVES = ("ddpm", "ambient")
DEFAULT_T_NATURE = 300


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters; research/probe-training.md sized them (lr 1e-3 at batch 64, EMA with warm-up)."""

    objective: str = "ddpm"
    t_nature: int | None = None
    steps: int = 20_000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50


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
        pixels = torch.from_numpy(dataset.images[[r.id for r in records]]).permute(0, 3, 1, 2).float()
        embeddings = torch.cat(
            [encoder([r.caption for r in records[i : i + 256]]).embeddings for i in range(0, len(records), 256)]
        )
        entries = torch.repeat_interleave(torch.arange(len(records)), torch.tensor([r.copies for r in records]))
        return cls(pixels / 127.5 - 1, embeddings, encoder([""]).embeddings, entries)

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
    """One fixed noisy copy x_{t_n} per unique image (duplicates share it, DESIGN.md Decisions §2)."""
    generator = torch.Generator().manual_seed(seed + 1)
    sigma2 = nature_sigma2(t_nature, alphas_cumprod)
    return (1 - sigma2) ** 0.5 * images + sigma2**0.5 * torch.randn(images.shape, generator=generator)


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """EMA with warm-up min(decay, (1 + t)/(10 + t)), so early averages forget the random initialisation."""
    rate = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for averaged, current in zip(ema.parameters(), model.parameters(), strict=True):
            averaged.lerp_(current, 1 - rate)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 10% (probe-training.md: decay should reduce the colour shift)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _resumable(config: dict) -> dict:
    """The settings a checkpoint must share with the run that resumes it (more --steps may continue a run)."""
    return {k: v for k, v in config.items() if k not in ("steps", "checkpoint_every", "log_every")}


def train(config: TrainConfig, dataset: EmojiMem, out: Path, device: str = "cpu", progress: bool = True) -> dict:
    """Train (resuming from out/checkpoint if present), then write out/config.json + out/unet.safetensors (EMA)."""
    if config.objective not in OBJECTIVES:
        raise MemdemoError(f"unknown objective {config.objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    t_nature = (config.t_nature or DEFAULT_T_NATURE) if config.objective == "ambient" else None
    torch.manual_seed(config.seed)
    model = UNet2DConditionModel(**UNET_CONFIG).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    alphas = DDPMScheduler.from_config(SCHEDULE_CONFIG).alphas_cumprod
    data = TrainingData.from_dataset(dataset, MiniLMTextEncoder(torch.device(device)))
    if t_nature is not None:
        data.nature = nature_copies(data.images, t_nature, alphas, config.seed)
    alphas = alphas.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint, start, seconds = out / "checkpoint", 0, 0.0
    if (checkpoint / STATE_FILE).is_file():
        state = load_checkpoint(checkpoint, model, ema, optimizer)
        if _resumable(state["config"]) != _resumable(asdict(config)):
            raise MemdemoError(f"{checkpoint} was made with other settings; delete it or pass the same options")
        start, seconds = state["step"], state["seconds"]
        generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
    log = (out / "train_log.jsonl").open("a", encoding="utf-8")
    steps = range(start, config.steps)
    bar = tqdm(steps, initial=start, total=config.steps, disable=not progress, desc=config.objective)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    started = time.perf_counter() - seconds
    for step in bar:
        x0, x_nature, states, t, noise = data.sample(
            config.batch_size, generator, config.caption_dropout, len(alphas), device
        )
        x_t = noised_inputs(x0, x_nature, t, noise, t_nature, alphas)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        with autocast:
            eps = model(x_t, t, encoder_hidden_states=states).sample
        loss = diffusion_loss(eps.float(), x_t, noise, x_nature, t, t_nature, alphas).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        ema_update(ema, model, step, config.ema_decay)
        done, elapsed = step + 1, time.perf_counter() - started
        if done % config.log_every == 0 or done == config.steps:
            record = {"step": done, "loss": round(loss.item(), 5), "lr": learning_rate(config, step)}
            log.write(json.dumps({**record, "seconds": round(elapsed, 1)}) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if done % config.checkpoint_every == 0 or done == config.steps:
            state = {
                "step": done,
                "config": asdict(config),
                "seconds": elapsed,
                "generator": generator.get_state().tolist(),
            }
            save_checkpoint(checkpoint, model, ema, optimizer, state)
    log.close()
    card = {
        "objective": config.objective,
        "t_nature": t_nature,
        "sigma_ve_nature": None if t_nature is None else ((1 - alphas[t_nature]) / alphas[t_nature]).sqrt().item(),
        "hyperparameters": asdict(config),
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "train_seconds": round(time.perf_counter() - started, 1),
        "steps_done": config.steps,
    }
    save_emojimem(out, ema, card)
    return card
