"""The one sampling loop: baseline and mitigated trajectories from the same x_T, one batched UNet call per step,
one `Step` per trajectory per step; a policy decides the mitigated ε̂ (docs/formulas.md, "One sampling step")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from memdemo.backends.base import Backend
from memdemo.guidance.base import TERM_NAMES, GuidanceError, Guided, Policy, StepContext, check_finite
from memdemo.guidance.cfg import classifier_free_guidance, cond_uncond_norm, predicted_x0
from memdemo.guidance.similarity import SimilarityMonitor
from memdemo.reference.index import Match
from memdemo.trace import Final, Step, Trace


@dataclass(frozen=True)
class Request:
    """What a person asks for: prompt, seed, number of steps, CFG scale s0, scheduler."""

    prompt: str
    seed: int = 0
    steps: int = 50
    cfg: float = 7.5
    scheduler: str = "ddim"

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= 1000:
            raise GuidanceError(f"steps must be between 1 and 1000, got {self.steps}")
        if not np.isfinite(self.cfg):
            raise GuidanceError(f"the CFG scale must be a finite number, got {self.cfg}")


@dataclass
class StepUpdate:
    """Both trajectories after one step, with their x̂0 for previews."""

    baseline: Step
    mitigated: Step
    x0_baseline: torch.Tensor
    x0_mitigated: torch.Tensor


def initial_noise(backend: Backend, seed: int) -> torch.Tensor:
    """x_T from a CPU generator, as diffusers' pipelines draw it: same seed, same x_T on every device."""
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn((1, *backend.sample_shape), generator=generator, dtype=torch.float32).to(backend.device)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] → uint8 (N, H, W, 3)."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class Generation:
    """Iterate to run: yields a StepUpdate per step; afterwards `trace` and `images` hold the result."""

    def __init__(
        self,
        backend: Backend,
        request: Request,
        policy: Policy,
        monitor: SimilarityMonitor | None = None,
        method: str | None = None,
    ) -> None:
        self.backend = backend
        self.request = request
        self.policy = policy
        self.monitor = monitor
        self.trace = Trace(
            run={
                "model": backend.name,
                "prompt": request.prompt,
                "seed": request.seed,
                "method": method or policy.name,
                "params": {**asdict(request), **policy.params()},
                "feature": monitor.index.feature.name if monitor else None,
                "warnings": [],
            }
        )
        self.images: dict[str, np.ndarray] = {}
        self.decoded: torch.Tensor | None = None

    def _step_record(self, index: int, t: int, alpha_bar: float, norm: float, match: Match | None, guided: Guided):
        step = Step(index, t, alpha_bar, norm, threshold=guided.threshold, active=guided.active, terms=guided.terms)
        step.scales = guided.scales
        if match is not None:
            step.similarity, step.nl2 = match.similarity, match.nl2
            step.nearest_id, step.nearest_caption = match.id, match.caption
        return step

    @torch.no_grad()
    def __iter__(self) -> Iterator[StepUpdate]:
        backend, request, started = self.backend, self.request, time.perf_counter()
        encoding = backend.encode_text([request.prompt, ""])
        if encoding.truncated[0]:
            self.trace.run["warnings"].append(f"prompt truncated to the model's {backend.max_tokens} tokens")
        cond, uncond = encoding.embeddings[:1], encoding.embeddings[1:]
        embeddings = torch.cat([uncond, cond, uncond, cond])
        schedulers = [backend.make_scheduler(request.scheduler) for _ in range(2)]
        for scheduler in schedulers:
            scheduler.set_timesteps(request.steps, device=backend.device)
        x_base = initial_noise(backend, request.seed) * schedulers[0].init_noise_sigma
        x_mit = x_base.clone()
        caption_cache: dict[str, torch.Tensor] = {}

        for index, t in enumerate(schedulers[0].timesteps):
            alpha_bar = float(backend.alphas_cumprod[int(t)])
            inputs = [schedulers[0].scale_model_input(x_base, t), schedulers[1].scale_model_input(x_mit, t)]
            batch = torch.cat([inputs[0], inputs[0], inputs[1], inputs[1]])
            eps_ub, eps_cb, eps_um, eps_cm = backend.predict_noise(batch, t, embeddings).float().chunk(4)

            def predict_with_caption(caption: str, x=inputs[1], t=t) -> torch.Tensor:
                if caption not in caption_cache:
                    caption_cache[caption] = backend.encode_text([caption]).embeddings
                return backend.predict_noise(x, t, caption_cache[caption]).float()

            def predict_pair(x: torch.Tensor, t=t, scheduler=schedulers[1]) -> tuple[torch.Tensor, torch.Tensor]:
                model_input = scheduler.scale_model_input(x, t)
                pair = torch.cat([model_input, model_input])
                return backend.predict_noise(pair, t, embeddings[:2]).float().chunk(2)

            norm_mit = float(cond_uncond_norm(eps_um, eps_cm)[0])
            context = StepContext(
                index,
                int(t),
                alpha_bar,
                x_mit,
                eps_um,
                eps_cm,
                request.cfg,
                norm_mit,
                predict_with_caption,
                predict_pair,
            )
            self._check_prediction(eps_um + eps_cm, context)
            guided = self.policy.guide(context)
            eps_mit = check_finite(guided.eps, context, self.policy.name)
            baseline = Guided(classifier_free_guidance(eps_ub, eps_cb, request.cfg), scales={"cfg": request.cfg})
            x0 = predicted_x0(torch.cat([x_base, x_mit]), torch.cat([baseline.eps, eps_mit]), alpha_bar)
            matches = self.monitor.match(x0) if self.monitor else [None, None]
            norm_base = float(cond_uncond_norm(eps_ub, eps_cb)[0])
            update = StepUpdate(
                self._step_record(index, int(t), alpha_bar, norm_base, matches[0], baseline),
                self._step_record(index, int(t), alpha_bar, norm_mit, matches[1], guided),
                x0[:1],
                x0[1:],
            )
            self.trace.baseline.steps.append(update.baseline)
            self.trace.mitigated.steps.append(update.mitigated)
            x_base = schedulers[0].step(baseline.eps, t, x_base).prev_sample
            x_mit = schedulers[1].step(eps_mit, t, x_mit).prev_sample
            yield update

        self._finish(torch.cat([x_base, x_mit]), started)

    def _check_prediction(self, prediction: torch.Tensor, context: StepContext) -> None:
        """A non-finite UNet output means the previous step's guidance pushed x_t out of range: name that term."""
        if not self.trace.mitigated.steps:
            return
        previous = self.trace.mitigated.steps[-1]
        cause = ", ".join(TERM_NAMES.get(term, term) for term in previous.terms) or self.policy.name
        check_finite(prediction, context, f"the UNet after {cause} at step {previous.index} moved x_t")

    def _finish(self, final: torch.Tensor, started: float) -> None:
        """Decode both images, find their nearest training images and summarise the transition."""
        self.decoded = self.backend.decode(final).float()
        self.images = dict(zip(("baseline", "mitigated"), to_uint8(self.decoded), strict=True))
        if self.monitor:
            trajectories = (self.trace.baseline, self.trace.mitigated)
            for trajectory, match in zip(trajectories, self.monitor.match(final), strict=True):
                trajectory.final = Final(match.id, match.caption, match.similarity, match.nl2, match.cosine)
        transition = self.trace.mitigated.transition_step
        if transition is not None:
            step = self.trace.mitigated.steps[transition]
            fallback = "transition-fallback" in step.terms
            self.trace.run["transition"] = {
                "step": transition,
                "t": step.t,
                "alpha_bar": step.alpha_bar,
                "fallback": fallback,
            }
        self.trace.run["seconds"] = round(time.perf_counter() - started, 3)

    def run(self) -> Trace:
        """Run to the end without streaming."""
        for _ in self:
            pass
        return self.trace
