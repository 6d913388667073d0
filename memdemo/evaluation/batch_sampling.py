"""Plain classifier-free-guided sampling of many (prompt, seed) pairs at once: the baseline trajectory of
`sampling.Generation`, batched for evaluations that need no mitigation and no per-step trace."""

from __future__ import annotations

import numpy as np
import torch

from memdemo.backends.base import Backend
from memdemo.guidance.cfg import classifier_free_guidance
from memdemo.sampling import initial_noise, to_uint8


@torch.no_grad()
def sample_cfg(
    backend: Backend,
    prompts: list[str],
    seeds: list[int],
    cfg: float,
    steps: int = 50,
    scheduler: str = "ddim",
    batch_size: int = 64,
) -> np.ndarray:
    """uint8 (N, H, W, 3) images, one per (prompt, seed), each from the same x_T that Generation draws for its seed."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    uncond = backend.encode_text([""]).embeddings
    images = []
    for start in range(0, len(prompts), batch_size):
        chunk, chunk_seeds = prompts[start : start + batch_size], seeds[start : start + batch_size]
        cond = backend.encode_text(chunk).embeddings
        embeddings = torch.cat([uncond.expand(len(chunk), -1, -1), cond])
        sampler = backend.make_scheduler(scheduler)
        sampler.set_timesteps(steps, device=backend.device)
        x = torch.cat([initial_noise(backend, seed) for seed in chunk_seeds]) * sampler.init_noise_sigma
        for t in sampler.timesteps:
            model_input = sampler.scale_model_input(x, t)
            eps_u, eps_c = backend.predict_noise(torch.cat([model_input, model_input]), t, embeddings).float().chunk(2)
            x = sampler.step(classifier_free_guidance(eps_u, eps_c, cfg), t, x).prev_sample
        images.append(to_uint8(backend.decode(x).float()))
    return np.concatenate(images)
