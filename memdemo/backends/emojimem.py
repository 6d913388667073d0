"""EmojiMem: a text-conditional UNet with cross-attention on MiniLM token states, on 32×32×3 pixels or on the
4×16×16 latents of its own small autoencoder (a tiny Stable Diffusion); ε- or v-prediction."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from memdemo.backends.base import PREDICTION_TYPES, ModelError, TextEncoding, make_scheduler, v_to_epsilon
from memdemo.backends.text_encoder import EMBEDDING_DIM, MAX_TOKENS, shared_text_encoder
from memdemo.paths import assets_dir

ASSETS = assets_dir(check=False)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "unet.safetensors"
AUTOENCODER_FOLDER = "vae"


def unet_config(sample_size: int = 32, channels: int = 3) -> dict:
    """The EmojiMem UNet: 2.7 M parameters, cross-attention only at the lowest level, the fastest layout on CPU
    (docs/training.md)."""
    return {
        "sample_size": sample_size,
        "in_channels": channels,
        "out_channels": channels,
        "block_out_channels": [32, 64, 96],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
        "cross_attention_dim": EMBEDDING_DIM,
        "attention_head_dim": 8,
        "norm_num_groups": 16,
    }


UNET_CONFIG = unet_config()
# 1000 training steps so that t = 500 or 650 means what it means in the papers.
SCHEDULE_CONFIG = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"}


def load_autoencoder(folder: Path) -> AutoencoderKL:
    """A diffusers AutoencoderKL folder, safetensors only, with a clear message when it is unreadable."""
    try:
        return AutoencoderKL.from_pretrained(folder, use_safetensors=True)
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelError(f"{folder} is not a readable autoencoder ({str(error).splitlines()[0][:200]})") from error


def train_command(folder: Path) -> str:
    """The command that (re)makes a model folder: v2 models are latent, v-prediction, min-SNR-5 (docs/training.md)."""
    objective = "ambient" if "ambient" in folder.name else "ddpm"
    recipe = ""
    if "v2" in folder.name:
        recipe = " --prediction v_prediction --min-snr-gamma 5 --autoencoder training/emojimem-vae"
    return f"python -m memdemo train --objective {objective}{recipe} --out {folder}"


def save_emojimem(
    folder: Path,
    unet: UNet2DConditionModel,
    card: dict | None = None,
    prediction: str = "epsilon",
    autoencoder: AutoencoderKL | None = None,
) -> None:
    """Write config.json (architecture, schedule, parameterisation, card), unet.safetensors and, for a latent
    model, the autoencoder as a diffusers `vae/` folder."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in unet.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    if autoencoder is not None:
        autoencoder.save_pretrained(folder / AUTOENCODER_FOLDER, safe_serialization=True)
    config = {"unet": dict(unet.config), "schedule": SCHEDULE_CONFIG, "max_tokens": MAX_TOKENS}
    config |= {"prediction": prediction, "card": card or {}}
    config["unet"] = {key: value for key, value in config["unet"].items() if not key.startswith("_")}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=list) + "\n", encoding="utf-8")


class EmojiMemBackend:
    """The built-in model; `load` reads shipped weights, `random` gives the same architecture untrained.
    `predict_noise` always returns ε: a v-prediction is converted, so every signal downstream stays correct."""

    image_size = 32
    max_tokens = MAX_TOKENS

    def __init__(
        self,
        name: str,
        unet: UNet2DConditionModel,
        schedule: dict,
        device: torch.device,
        prediction: str = "epsilon",
        autoencoder: AutoencoderKL | None = None,
    ) -> None:
        if prediction not in PREDICTION_TYPES:
            raise ModelError(f"{name}: prediction type {prediction!r} is neither of {', '.join(PREDICTION_TYPES)}")
        self.name = name
        self.device = device
        self.dtype = torch.float32
        self.unet = unet.to(device).eval().requires_grad_(False)
        self.sample_shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
        self.prediction = prediction
        self.autoencoder = autoencoder.to(device).eval().requires_grad_(False) if autoencoder else None
        self.set_memory_format(torch.channels_last if device.type == "cpu" else torch.contiguous_format)
        self.schedule = schedule
        self.text_encoder = shared_text_encoder(device)
        self._alphas_cumprod = DDPMScheduler.from_config(schedule).alphas_cumprod

    def set_memory_format(self, memory_format: torch.memory_format) -> None:
        """Layout of the UNet's weights and inputs. channels_last spares oneDNN a reorder per convolution on CPU
        (benchmarks/memory_format.md); other devices keep the default until measured."""
        self.memory_format = memory_format
        self.unet.to(memory_format=memory_format)

    @classmethod
    def random(cls, seed: int = 0, device: str = "cpu") -> EmojiMemBackend:
        """Random weights of the real architecture (for tests and until the trained weights exist), the same for the
        same seed; the global RNG is seeded only inside a fork, so the caller's random state is left as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet = UNet2DConditionModel(**UNET_CONFIG)
        return cls("emojimem-random", unet, SCHEDULE_CONFIG, torch.device(device))

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
        autoencoder = load_autoencoder(folder / AUTOENCODER_FOLDER) if (folder / AUTOENCODER_FOLDER).is_dir() else None
        schedule, prediction = config.get("schedule", SCHEDULE_CONFIG), config.get("prediction", "epsilon")
        return cls(folder.name, unet, schedule, torch.device(device), prediction, autoencoder)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self._alphas_cumprod

    def encode_text(self, prompts: list[str]) -> TextEncoding:
        return self.text_encoder(prompts)

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        output = self.unet(x.contiguous(memory_format=self.memory_format), t, encoder_hidden_states=embeddings)
        output = output.sample.contiguous()
        if self.prediction == "epsilon":
            return output
        return v_to_epsilon(output, x, self._alphas_cumprod.to(x.device)[t])

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """x̂0 → pixels in [0, 1], through the autoencoder's decoder for a latent model; differentiable (clamping
        passes gradients inside the range)."""
        if self.autoencoder is not None:
            x0 = self.autoencoder.decode(x0 / self.autoencoder.config.scaling_factor).sample
        return ((x0 + 1) / 2).clamp(0, 1)

    def make_scheduler(self, name: str):
        return make_scheduler(name, DDPMScheduler.from_config(self.schedule).config)
