"""Trace → matplotlib figures: d_t per step for both trajectories, and σ_t with the threshold λ_t."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from memdemo.guidance import VARIANTS
from memdemo.trace import Trace

COLOURS = {"baseline": "#7f7f7f", "mitigated": "#d62728"}
# What a shaded step means, per method: AMG's gate was open, or a transition method was still before its switch.
SHADING = {"amg": "AMG acted", **{m: "before the switch" for m in ("stp", "dtp", "og-stp", "og-dtp")}}


def draw_norm(axes: Axes, trace: Trace) -> None:
    """‖ε_c − ε_u‖ per step for both trajectories, the transition point marked (Jain et al. 2025, Fig. 2)."""
    for name in ("baseline", "mitigated"):
        steps = getattr(trace, name).steps
        axes.plot([s.index for s in steps], [s.cond_uncond_norm for s in steps], color=COLOURS[name], label=name)
    mitigated = trace.mitigated.steps
    transition = trace.mitigated.transition_step
    if transition is not None:
        fallback = " fallback" if mitigated[transition].fallback else ""
        label = f"transition{fallback} (t = {mitigated[transition].t})"
        axes.axvline(transition, color=COLOURS["mitigated"], linestyle=":", label=label)
    axes.set(title="d_t = ‖ε_c − ε_u‖ per step", xlabel="denoising step", ylabel="‖ε_c − ε_u‖")
    _legend_below(axes)


def draw_similarity(axes: Axes, trace: Trace) -> None:
    """σ_t of x̂0 for both trajectories, λ_t dashed and the steps where guidance fired shaded (AMG Eq. 10)."""
    for name in ("baseline", "mitigated"):
        steps = getattr(trace, name).steps
        if steps and steps[0].similarity is not None:
            axes.plot([s.index for s in steps], [s.similarity for s in steps], color=COLOURS[name], label=name)
    mitigated = trace.mitigated.steps
    if any(s.threshold is not None for s in mitigated):
        axes.plot([s.index for s in mitigated], [s.threshold for s in mitigated], "k--", label="λ_t")
    method = VARIANTS[trace.run.method].method if trace.run.method in VARIANTS else trace.run.method
    label = SHADING.get(method, "mitigation acted")
    for s in mitigated:
        if s.active:
            axes.axvspan(s.index - 0.5, s.index + 0.5, color=COLOURS["mitigated"], alpha=0.12, lw=0, label=label)
            label = None
    feature = trace.run.feature or "none"
    axes.set(title=f"guide signal σ_t ({feature}) vs λ_t", xlabel="denoising step", ylabel="σ_t")
    _legend_below(axes)


def _legend_below(axes: Axes) -> None:
    """The legend under the x axis, so it never covers the early steps where things happen."""
    if axes.lines or axes.patches:
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, frameon=False)


def trace_figure(trace: Trace) -> Figure:
    """Both panels side by side, titled with the run."""
    figure = Figure(figsize=(10, 4.0), layout="constrained")
    norm_axes, similarity_axes = figure.subplots(1, 2)
    draw_norm(norm_axes, trace)
    draw_similarity(similarity_axes, trace)
    run = trace.run
    figure.suptitle(f"{run.model} · {run.method} · “{run.prompt}” · seed {run.seed}")
    return figure


def panel_figure(trace: Trace, draw, steps: int) -> Figure:
    """One panel for the live UI, its x axis fixed to the run's length so that the curve grows left to right."""
    figure = Figure(figsize=(5, 3.6))
    figure.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.3)  # a constrained layout costs 2× per frame
    axes = figure.add_subplot()
    draw(axes, trace)
    axes.set_xlim(-0.5, steps - 0.5)
    return figure
