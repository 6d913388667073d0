"""Stable Diffusion v1.x/v2.x through diffusers components: latent UNet, VAE decoder, CLIP text encoder."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from memdemo.backends.base import ModelError, TextEncoding, make_scheduler

DEFAULT_REPO = "CompVis/stable-diffusion-v1-4"


class StableDiffusionBackend:
    """Wraps diffusers components; encoding and the noise call mirror `StableDiffusionPipeline`."""

    def __init__(
        self,
        name: str,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        scheduler_config: dict,
    ) -> None:
        self.name = name
        self.unet = unet.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.scheduler_config = scheduler_config
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
        """Load from a Hub id or a local folder; fp16 on CUDA. Offline or missing weights give a clear message."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        try:
            parts = {
                "unet": UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype),
                "vae": AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype),
                "text_encoder": CLIPTextModel.from_pretrained(source, subfolder="text_encoder", torch_dtype=dtype),
                "tokenizer": CLIPTokenizer.from_pretrained(source, subfolder="tokenizer"),
                "scheduler_config": DDIMScheduler.load_config(source, subfolder="scheduler"),
            }
        except (OSError, ValueError) as error:
            raise ModelError(
                f"cannot load Stable Diffusion from {source!r}: no local folder with those weights, and the "
                "Hugging Face Hub is unreachable or the id is wrong. Download it on a connected machine "
                f"(`huggingface-cli download {source} --local-dir FOLDER`) and pass --model FOLDER. ({error})"
            ) from error
        for name in ("unet", "vae", "text_encoder"):
            parts[name] = parts[name].to(device)
        return cls(source, **parts)

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
        return TextEncoding(states.to(self.dtype), [length > self.max_tokens for length in lengths])

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return self.unet(x.to(self.dtype), t, encoder_hidden_states=embeddings).sample.float()

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Latents → images in [0, 1] through the VAE decoder; differentiable."""
        images = self.vae.decode(x0.to(self.dtype) / self.vae.config.scaling_factor).sample.float()
        return (images / 2 + 0.5).clamp(0, 1)

    def make_scheduler(self, name: str):
        return make_scheduler(name, self.scheduler_config)
