"""The one sampling loop: baseline and mitigated trajectories from the same x_T, one batched UNet call per step,
one `Step` per trajectory per step; a policy decides the mitigated ε̂ (docs/formulas.md, "One sampling step")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from memdemo.backends.base import Backend
from memdemo.guidance.base import TERM_NAMES, GuidanceError, Guided, Policy, StepContext, check_finite
from memdemo.guidance.cfg import classifier_free_guidance, cond_uncond_norm, predicted_x0
from memdemo.guidance.similarity import SimilarityMonitor
from memdemo.reference.index import Match
from memdemo.trace import Final, RunInfo, Step, Trace, TransitionInfo

MAX_SEED = 2**63 - 1
MAX_CFG = 100.0


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
        if not 0 <= self.seed <= MAX_SEED:
            raise GuidanceError(f"the seed must be between 0 and {MAX_SEED} (2^63 − 1), got {self.seed}")
        if not (np.isfinite(self.cfg) and 0 <= self.cfg <= MAX_CFG):
            raise GuidanceError(f"the CFG scale s0 must be between 0 and {MAX_CFG:g}, got {self.cfg}")


@dataclass
class StepUpdate:
    """Both trajectories after one step, with their x̂0 for previews (and x̂0 decoded, where σ_t needed it)."""

    baseline: Step
    mitigated: Step
    x0_baseline: torch.Tensor
    x0_mitigated: torch.Tensor
    decoded: torch.Tensor | None = None


def initial_noise(backend: Backend, seed: int) -> torch.Tensor:
    """x_T from a CPU generator, as diffusers' pipelines draw it: same seed, same x_T on every device."""
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn((1, *backend.sample_shape), generator=generator, dtype=torch.float32).to(backend.device)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] → uint8 (N, H, W, 3)."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class _LoopState:
    """What changes from step to step: both x_t, the schedulers, and the captions G_dup has encoded."""

    embeddings: torch.Tensor
    schedulers: list
    x_base: torch.Tensor
    x_mit: torch.Tensor
    caption_cache: dict[str, torch.Tensor] = field(default_factory=dict)


class Generation:
    """Iterate to run: yields a StepUpdate per step; afterwards `trace` and `images` hold the result."""

    def __init__(
        self,
        backend: Backend,
        request: Request,
        policy: Policy,
        monitor: SimilarityMonitor | None = None,
        method: str | None = None,
        method_params: dict | None = None,
    ) -> None:
        self.backend = backend
        self.request = request
        self.policy = policy
        self.monitor = monitor
        self.trace = Trace(
            RunInfo(
                model=backend.name,
                prompt=request.prompt,
                seed=request.seed,
                method=method or policy.name,
                params={**asdict(request), **policy.params()},
                method_params=method_params or {},
                feature=monitor.index.feature.name if monitor else None,
                index=str(monitor.index.folder) if monitor and monitor.index.folder else None,
            )
        )
        self.images: dict[str, np.ndarray] = {}
        self.decoded: torch.Tensor | None = None

    def _step_record(self, index: int, t: int, alpha_bar: float, norm: float, match: Match | None, guided: Guided):
        step = Step(index, t, alpha_bar, norm, threshold=guided.threshold, active=guided.active, terms=guided.terms)
        step.scales, step.switched, step.fallback = guided.scales, guided.transition, guided.fallback
        if match is not None:
            step.similarity, step.nl2 = match.similarity, match.nl2
            step.nearest_id, step.nearest_caption = match.id, match.caption
        return step

    @torch.no_grad()
    def __iter__(self) -> Iterator[StepUpdate]:
        """One step = predict (one batched UNet call), guide (the policy's ε̂ beside plain CFG), record (x̂0, σ_t and
        the Step of each trajectory), advance (the scheduler)."""
        started = time.perf_counter()
        state = self._start()
        for index, t in enumerate(state.schedulers[0].timesteps):
            context, eps_base_pair = self._predict(state, index, t)
            baseline, guided = self._guide(context, eps_base_pair)
            update = self._record(state, context, eps_base_pair, baseline, guided)
            self._advance(state, t, baseline.eps, guided.eps)
            yield update
        self._finish(torch.cat([state.x_base, state.x_mit]), started)

    def _start(self) -> _LoopState:
        """Encode the prompt and the empty caption, make both schedulers and draw the shared x_T."""
        backend, request = self.backend, self.request
        encoding = backend.encode_text([request.prompt, ""])
        if encoding.truncated[0]:
            kept = f": it reads “{encoding.kept[0]}”" if encoding.kept else ""
            self.trace.run.warnings.append(f"prompt truncated to the model's {backend.max_tokens} tokens{kept}")
        cond, uncond = encoding.embeddings[:1], encoding.embeddings[1:]
        schedulers = [backend.make_scheduler(request.scheduler) for _ in range(2)]
        for scheduler in schedulers:
            scheduler.set_timesteps(request.steps, device=backend.device)
        x_base = initial_noise(backend, request.seed) * schedulers[0].init_noise_sigma
        return _LoopState(torch.cat([uncond, cond, uncond, cond]), schedulers, x_base, x_base.clone())

    def _predict(self, state: _LoopState, index: int, t: torch.Tensor) -> tuple[StepContext, tuple]:
        """ε_u and ε_c of both trajectories in one UNet call, and the mitigated step's context."""
        backend = self.backend
        inputs = [state.schedulers[0].scale_model_input(state.x_base, t)]
        inputs.append(state.schedulers[1].scale_model_input(state.x_mit, t))
        batch = torch.cat([inputs[0], inputs[0], inputs[1], inputs[1]])
        eps_ub, eps_cb, eps_um, eps_cm = backend.predict_noise(batch, t, state.embeddings).float().chunk(4)

        def predict_with_caption(caption: str, x=inputs[1]) -> torch.Tensor:
            if caption not in state.caption_cache:
                state.caption_cache[caption] = backend.encode_text([caption]).embeddings
            return backend.predict_noise(x, t, state.caption_cache[caption]).float()

        def predict_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            model_input = state.schedulers[1].scale_model_input(x, t)
            pair = torch.cat([model_input, model_input])
            return backend.predict_noise(pair, t, state.embeddings[:2]).float().chunk(2)

        alpha_bar = float(backend.alphas_cumprod[int(t)])
        norm = float(cond_uncond_norm(eps_um, eps_cm)[0])
        context = StepContext(
            index, int(t), alpha_bar, state.x_mit, eps_um, eps_cm, self.request.cfg, norm,
            predict_with_caption, predict_pair,
        )  # fmt: skip
        self._check_prediction(eps_um + eps_cm, context)
        return context, (eps_ub, eps_cb)

    def _guide(self, context: StepContext, eps_base_pair: tuple) -> tuple[Guided, Guided]:
        """Plain CFG for the baseline; the policy's ε̂ for the mitigated trajectory."""
        cfg = self.request.cfg
        baseline = Guided(classifier_free_guidance(*eps_base_pair, cfg), scales={"cfg": cfg})
        guided = self.policy.guide(context)
        guided.eps = check_finite(guided.eps, context, self.policy.name)
        return baseline, guided

    def _record(
        self, state: _LoopState, context: StepContext, eps_base_pair: tuple, baseline: Guided, guided: Guided
    ) -> StepUpdate:
        """x̂0 and σ_t of both trajectories, one Step each in the trace."""
        x0 = predicted_x0(
            torch.cat([state.x_base, state.x_mit]), torch.cat([baseline.eps, guided.eps]), context.alpha_bar
        )
        decoded, matches = None, [None, None]
        if self.monitor:
            decoded = self.backend.decode(x0)
            matches = self.monitor.match_images(decoded)
        norm_base = float(cond_uncond_norm(*eps_base_pair)[0])
        update = StepUpdate(
            self._step_record(context.index, context.t, context.alpha_bar, norm_base, matches[0], baseline),
            self._step_record(
                context.index, context.t, context.alpha_bar, context.cond_uncond_norm, matches[1], guided
            ),
            x0[:1],
            x0[1:],
            decoded,
        )
        self.trace.baseline.steps.append(update.baseline)
        self.trace.mitigated.steps.append(update.mitigated)
        return update

    @staticmethod
    def _advance(state: _LoopState, t: torch.Tensor, eps_base: torch.Tensor, eps_mit: torch.Tensor) -> None:
        state.x_base = state.schedulers[0].step(eps_base, t, state.x_base).prev_sample
        state.x_mit = state.schedulers[1].step(eps_mit, t, state.x_mit).prev_sample

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
            self.trace.run.transition = TransitionInfo(transition, step.t, step.alpha_bar, step.fallback)
        self.trace.run.seconds = round(time.perf_counter() - started, 3)

    def run(self) -> Trace:
        """Run to the end without streaming."""
        for _ in self:
            pass
        return self.trace
