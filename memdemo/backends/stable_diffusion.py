"""Stable Diffusion v1.x/v2.x through diffusers components: latent UNet, VAE decoder, CLIP text encoder.

One loading path for a Hub id and a local folder: a Hub id is first resolved to a local snapshot (downloaded on first
use, with progress bars, when the Hub is reachable), then the components are read from that folder, safetensors
only. Offline, a missing snapshot fails at once with the command that fetches the weights on a connected machine."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from huggingface_hub import constants, snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import SafetensorError
from transformers import CLIPTextModel, CLIPTokenizer

from memdemo.backends.base import (
    PREDICTION_TYPES,
    ModelError,
    TextEncoding,
    make_scheduler,
    read_text,
    v_to_epsilon,
)

DEFAULT_REPO = "CompVis/stable-diffusion-v1-4"
ALIASES = {"sd-v1-4": DEFAULT_REPO}
# The files memdemo reads: fp32 safetensors of the UNet, text encoder and VAE, plus configs and the tokenizer.
# No safety checker, no .bin/.ckpt, no fp16 or EMA variants.
WEIGHT_FILES = (
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)
CONFIG_FILES = ("unet/config.json", "vae/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json")
# The Hub's SD repositories hold the BPE files; transformers ≥ 5 `save_pretrained` writes tokenizer.json instead.
TOKENIZER_FILES = (("tokenizer/vocab.json", "tokenizer/merges.txt"), ("tokenizer/tokenizer.json",))
ALLOW_PATTERNS = [*WEIGHT_FILES, "*.json", "tokenizer/*.txt"]
# fp32 safetensors of CompVis/stable-diffusion-v1-4: UNet 860 M, text encoder 123 M, VAE 84 M parameters, 4 bytes each.
DOWNLOAD_SIZES = {DEFAULT_REPO: "about 4.3 GB"}
UNKNOWN_SIZE = "several GB"


def resolve_alias(model: str) -> str:
    """The Hub id behind a memdemo alias such as `sd-v1-4`; anything else unchanged."""
    return ALIASES.get(model, model)


def download_size(repo_id: str) -> str:
    """A human estimate of what `repo_id`'s weights take to download (the files memdemo reads)."""
    return DOWNLOAD_SIZES.get(resolve_alias(repo_id), UNKNOWN_SIZE)


def fetch_command(repo_id: str) -> str:
    """The command that downloads exactly the files memdemo reads into a folder that --model accepts."""
    repo_id = resolve_alias(repo_id)
    include = " ".join(f'"{pattern}"' for pattern in ALLOW_PATTERNS)
    return f"hf download {repo_id} --include {include} --local-dir {repo_id.split('/')[-1]}"


def fetch_one_liner(repo_id: str) -> str:
    """The same download as a Python one-liner (any huggingface_hub version, no CLI needed)."""
    repo_id = resolve_alias(repo_id)
    return (
        f"python -c \"from huggingface_hub import snapshot_download; snapshot_download('{repo_id}', "
        f"allow_patterns={ALLOW_PATTERNS!r}, local_dir='{repo_id.split('/')[-1]}')\""
    )


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as the environment says now."""
    now = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(constants.HF_HUB_OFFLINE) or now


def _fetch_hint(repo_id: str) -> str:
    folder = resolve_alias(repo_id).split("/")[-1]
    return (
        f"On a machine with internet access run `{fetch_command(repo_id)}` ({download_size(repo_id)}; or "
        f"`{fetch_one_liner(repo_id)}`), copy the folder {folder}/ here and pass `--model {folder}` (a path); or "
        f"run memdemo once on a connected machine and copy its Hugging Face cache ({constants.HF_HUB_CACHE})."
    )


def _is_repo_id(source: str) -> bool:
    return source.count("/") == 1 and not Path(source).exists()


def snapshot_folder(source: str) -> Path:
    """A local folder holding `source`'s components: the folder itself, or the Hub snapshot (downloaded now if the
    Hub is reachable and the files are not cached; offline, only the cache is looked at)."""
    source = resolve_alias(source)
    if not _is_repo_id(source):
        return Path(source)
    offline = hub_offline()
    try:
        return Path(snapshot_download(source, allow_patterns=ALLOW_PATTERNS, local_files_only=offline))
    except LocalEntryNotFoundError as error:
        why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face Hub cannot be reached"
        raise ModelError(
            f"cannot load Stable Diffusion {source!r}: its weights are not in the local Hugging Face cache and {why}. "
            + _fetch_hint(source)
        ) from error
    except GatedRepoError as error:
        raise ModelError(
            f"cannot load Stable Diffusion {source!r}: the repository is gated; accept its licence on "
            f"https://huggingface.co/{source} and log in with `hf auth login`, then try again"
        ) from error
    except RepositoryNotFoundError as error:
        raise ModelError(
            f"cannot load Stable Diffusion {source!r}: no such repository on the Hugging Face Hub (or it is private; "
            f"then log in with `hf auth login`). Check the id, e.g. {DEFAULT_REPO}, or pass a local folder"
        ) from error
    except RevisionNotFoundError as error:
        raise ModelError(f"cannot load Stable Diffusion {source!r}: its main revision is missing ({error})") from error
    except HFValidationError as error:
        raise ModelError(
            f"cannot load Stable Diffusion {source!r}: neither a folder nor a valid Hub id (owner/name)"
        ) from error
    except OSError as error:  # network failures mid-download, disk full, other HTTP errors
        raise ModelError(
            f"cannot load Stable Diffusion {source!r}: the download failed ({_first_line(error)}). "
            + _fetch_hint(source)
        ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _missing(present) -> list[str]:
    """The files memdemo reads that `present(name)` says are absent (either tokenizer layout will do)."""
    missing = [name for name in (*WEIGHT_FILES, *CONFIG_FILES) if not present(name)]
    if not any(all(present(name) for name in layout) for layout in TOKENIZER_FILES):
        missing.append(" or ".join(" + ".join(layout) for layout in TOKENIZER_FILES))
    return missing


def missing_files(folder: Path) -> list[str]:
    """Which of the files memdemo reads are absent from a local folder."""
    return _missing(lambda name: (folder / name).is_file())


def weights_cached(source: str = DEFAULT_REPO) -> bool:
    """Whether every file memdemo reads is already on this machine: in the Hugging Face cache for a Hub id (no
    network), in the folder for a path."""
    source = resolve_alias(source)
    if not _is_repo_id(source):
        return not missing_files(Path(source))
    try:
        return not _missing(lambda name: isinstance(try_to_load_from_cache(source, name), str))
    except HFValidationError:
        return False


@dataclass(frozen=True)
class Availability:
    """Whether the demo should offer Stable Diffusion, and the facts behind it."""

    offered: bool
    cuda: bool
    cached: bool
    download: str  # e.g. "about 4.3 GB"
    source: str

    @property
    def message(self) -> str:
        """One line for people: what choosing Stable Diffusion costs here."""
        if self.cached:
            place = "on a GPU" if self.cuda else "on the CPU (minutes per image)"
            return f"Stable Diffusion ({self.source}) is downloaded; it runs {place}."
        if self.cuda:
            return f"Stable Diffusion ({self.source}) downloads {self.download} on first use."
        return (
            f"Stable Diffusion ({self.source}) is not offered: no GPU and the weights ({self.download}) are not "
            f"downloaded. Fetch them with `{fetch_command(self.source)}`."
        )


def availability(source: str = DEFAULT_REPO) -> Availability:
    """Offer SD when a CUDA device is present (it may download on first use) or its weights are already here (then it
    runs even on a CPU, slowly). Looks only at the local cache: no network, a few milliseconds."""
    repo = resolve_alias(source)
    cuda = torch.cuda.is_available()
    cached = weights_cached(repo)
    return Availability(cuda or cached, cuda, cached, download_size(repo), repo)


class StableDiffusionBackend:
    """Wraps diffusers components; encoding and the noise call mirror `StableDiffusionPipeline`. `predict_noise`
    always returns ε: a v-prediction model's output is converted, so x̂0, d_t, σ_t and G_sim stay correct."""

    def __init__(
        self,
        name: str,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        scheduler_config: dict,
    ) -> None:
        self.prediction = scheduler_config.get("prediction_type", "epsilon")
        if self.prediction not in PREDICTION_TYPES:
            raise ModelError(
                f"{name}: its scheduler's prediction_type is {self.prediction!r}; memdemo supports "
                f"{' and '.join(PREDICTION_TYPES)} models only"
            )
        self.name = name
        self.unet = unet.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.scheduler_config = dict(scheduler_config)
        self.device = unet.device
        self.dtype = unet.dtype
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        size = unet.config.sample_size
        self.sample_shape = (unet.config.in_channels, size, size)
        self.image_size = size * self.vae_scale_factor
        self.max_tokens = tokenizer.model_max_length
        self._alphas_cumprod = DDIMScheduler.from_config(scheduler_config).alphas_cumprod

    @classmethod
    def from_pretrained(cls, source: str = DEFAULT_REPO, device: str | None = None) -> StableDiffusionBackend:
        """Load from a Hub id (or alias such as sd-v1-4) or a folder written by `save_pretrained`, through one path:
        resolve to a local folder, then read safetensors only; fp16 on CUDA, fp32 on the CPU."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        name = resolve_alias(source)
        folder = snapshot_folder(name)
        missing = missing_files(folder)
        if missing:
            raise ModelError(
                f"cannot load Stable Diffusion from {name!r}: {folder} lacks {', '.join(missing)} (memdemo reads "
                f"safetensors weights only; a folder written by diffusers' `save_pretrained` has them). "
                + _fetch_hint(name if _is_repo_id(name) else DEFAULT_REPO)
            )
        weights = {"use_safetensors": True, "torch_dtype": dtype}
        try:
            parts = {
                "unet": UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **weights),
                "vae": AutoencoderKL.from_pretrained(folder, subfolder="vae", **weights),
                "text_encoder": CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **weights),
                "tokenizer": CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
                "scheduler_config": dict(DDIMScheduler.load_config(folder, subfolder="scheduler")),
            }
        except (OSError, ValueError, SafetensorError) as error:
            raise ModelError(
                f"cannot load Stable Diffusion from {name!r}: the files in {folder} are incomplete or corrupted "
                f"({_first_line(error)}). Download them again: {_fetch_hint(name)}"
            ) from error
        for part in ("unet", "vae", "text_encoder"):
            parts[part] = parts[part].to(device)
        return cls(name, **parts)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self._alphas_cumprod

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> TextEncoding:
        lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        ids = self.tokenizer(
            prompts, padding="max_length", max_length=self.max_tokens, truncation=True, return_tensors="pt"
        ).input_ids
        states = self.text_encoder(ids.to(self.device))[0]
        truncated = [length > self.max_tokens for length in lengths]
        return TextEncoding(states.to(self.dtype), truncated, read_text(self.tokenizer, prompts, self.max_tokens))

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        output = self.unet(x.to(self.dtype), t, encoder_hidden_states=embeddings).sample.float()
        if self.prediction == "epsilon":
            return output
        alpha_bar = self._alphas_cumprod[torch.as_tensor(t).cpu().long()].to(x.device)
        return v_to_epsilon(output, x.float(), alpha_bar)

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Latents → images in [0, 1] through the VAE decoder; differentiable."""
        images = self.vae.decode(x0.to(self.dtype) / self.vae.config.scaling_factor).sample.float()
        return (images / 2 + 0.5).clamp(0, 1)

    def make_scheduler(self, name: str):
        """DDIM or DPM-Solver++ over the model's noise schedule, reading the model output as ε (see predict_noise)."""
        return make_scheduler(name, self.scheduler_config)
