"""EmojiMem: a text-conditional pixel-space UNet (32×32×3) with cross-attention on MiniLM token states."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from memdemo.backends.base import ModelError, TextEncoding, make_scheduler
from memdemo.backends.text_encoder import EMBEDDING_DIM, MAX_TOKENS, MiniLMTextEncoder

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "unet.safetensors"
# Cross-attention only at 8×8: the fastest layout on CPU (research/probe-env.md §3, config F).
UNET_CONFIG = {
    "sample_size": 32,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [32, 64, 96],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "cross_attention_dim": EMBEDDING_DIM,
    "attention_head_dim": 8,
    "norm_num_groups": 16,
}
# 1000 training steps so that t = 500 or 650 means what it means in the papers.
SCHEDULE_CONFIG = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"}


def train_command(folder: Path) -> str:
    objective = "ambient" if "ambient" in folder.name else "ddpm"
    return f"python -m memdemo train --objective {objective} --out {folder}"


def save_emojimem(folder: Path, unet: UNet2DConditionModel, card: dict | None = None) -> None:
    """Write config.json (architecture, schedule, card) and unet.safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in unet.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    config = {"unet": dict(unet.config), "schedule": SCHEDULE_CONFIG, "max_tokens": MAX_TOKENS, "card": card or {}}
    config["unet"] = {key: value for key, value in config["unet"].items() if not key.startswith("_")}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=list) + "\n", encoding="utf-8")


class EmojiMemBackend:
    """The built-in model; `load` reads shipped weights, `random` gives the same architecture untrained."""

    sample_shape = (3, 32, 32)
    image_size = 32
    max_tokens = MAX_TOKENS

    def __init__(self, name: str, unet: UNet2DConditionModel, schedule: dict, device: torch.device) -> None:
        self.name = name
        self.device = device
        self.dtype = torch.float32
        self.unet = unet.to(device).eval().requires_grad_(False)
        self.set_memory_format(torch.channels_last if device.type == "cpu" else torch.contiguous_format)
        self.schedule = schedule
        self.text_encoder = MiniLMTextEncoder(device)
        self._alphas_cumprod = DDPMScheduler.from_config(schedule).alphas_cumprod

    def set_memory_format(self, memory_format: torch.memory_format) -> None:
        """Layout of the UNet's weights and inputs. channels_last spares oneDNN a reorder per convolution on CPU
        (benchmarks/memory_format.md); other devices keep the default until measured."""
        self.memory_format = memory_format
        self.unet.to(memory_format=memory_format)

    @classmethod
    def random(cls, seed: int = 0, device: str = "cpu") -> EmojiMemBackend:
        """Random weights of the real architecture (for tests and until the trained weights exist)."""
        torch.manual_seed(seed)
        return cls("emojimem-random", UNet2DConditionModel(**UNET_CONFIG), SCHEDULE_CONFIG, torch.device(device))

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> EmojiMemBackend:
        """Load config.json + unet.safetensors, with a clear message for missing, mismatched or truncated files."""
        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
            raise ModelError(f"no EmojiMem weights in {folder}; train them with `{train_command(folder)}`")
        try:
            config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            unet = UNet2DConditionModel(**config["unet"])
            state = load_file(str(folder / WEIGHTS_FILE))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ModelError(f"{folder / CONFIG_FILE} does not describe an EmojiMem UNet ({error})") from error
        except (SafetensorError, OSError) as error:
            message = f"{folder / WEIGHTS_FILE} is truncated or corrupted ({error}); retrain: `{train_command(folder)}`"
            raise ModelError(message) from error
        expected = unet.state_dict()
        missing = expected.keys() - state.keys()
        unexpected = state.keys() - expected.keys()
        mismatched = [name for name in expected.keys() & state.keys() if state[name].shape != expected[name].shape]
        if missing or unexpected or mismatched:
            raise ModelError(
                f"{folder / WEIGHTS_FILE} does not match the architecture in {CONFIG_FILE} "
                f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} mis-shaped tensors)"
            )
        unet.load_state_dict(state)
        return cls(folder.name, unet, config.get("schedule", SCHEDULE_CONFIG), torch.device(device))

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self._alphas_cumprod

    def encode_text(self, prompts: list[str]) -> TextEncoding:
        return self.text_encoder(prompts)

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        return self.unet(x, t, encoder_hidden_states=embeddings).sample.contiguous()

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Pixels in [−1, 1] → [0, 1]; differentiable (clamping passes gradients inside the range)."""
        return ((x0 + 1) / 2).clamp(0, 1)

    def make_scheduler(self, name: str):
        return make_scheduler(name, DDPMScheduler.from_config(self.schedule).config)
