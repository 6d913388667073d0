"""Trace → matplotlib figure: d_t per step for both trajectories, and σ_t with the threshold λ_t."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure

from memdemo.trace import Trace

COLOURS = {"baseline": "#7f7f7f", "mitigated": "#d62728"}


def trace_figure(trace: Trace) -> Figure:
    """Two panels over denoising steps: ‖ε_c − ε_u‖ with the transition marked; σ_t, λ_t dashed, fired steps shaded."""
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    norm_axes, similarity_axes = figure.subplots(1, 2)
    for name in ("baseline", "mitigated"):
        steps = getattr(trace, name).steps
        x = [s.index for s in steps]
        norm_axes.plot(x, [s.cond_uncond_norm for s in steps], color=COLOURS[name], label=name)
        if steps and steps[0].similarity is not None:
            similarity_axes.plot(x, [s.similarity for s in steps], color=COLOURS[name], label=f"σ_t {name}")
    mitigated = trace.mitigated.steps
    transition = trace.mitigated.transition_step
    if transition is not None:
        fallback = " fallback" if "transition-fallback" in mitigated[transition].terms else ""
        label = f"transition{fallback} (t = {mitigated[transition].t})"
        norm_axes.axvline(transition, color=COLOURS["mitigated"], linestyle=":", label=label)
    if any(s.threshold is not None for s in mitigated):
        similarity_axes.plot([s.index for s in mitigated], [s.threshold for s in mitigated], "k--", label="λ_t")
    for s in mitigated:
        if s.active:
            similarity_axes.axvspan(s.index - 0.5, s.index + 0.5, color=COLOURS["mitigated"], alpha=0.12, lw=0)
    feature = trace.run.get("feature") or "none"
    norm_axes.set(title="‖ε_c − ε_u‖ per step (unsquared)", xlabel="denoising step", ylabel="norm")
    similarity_axes.set(title=f"similarity σ_t of x̂0 to nearest training image ({feature})", xlabel="denoising step")
    for axes in (norm_axes, similarity_axes):
        if axes.lines:
            axes.legend(fontsize=8)
    run = trace.run
    figure.suptitle(f"{run['model']} · {run['method']} · “{run['prompt']}” · seed {run['seed']}")
    return figure
