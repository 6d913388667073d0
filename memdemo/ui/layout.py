"""The Gradio page: inputs and mitigation panel, streamed outputs, and the Compare / Models / How it works tabs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace

import gradio as gr
import torch

from memdemo.backends import SCHEDULERS
from memdemo.errors import MemdemoError
from memdemo.evaluation.summary import published_results
from memdemo.guidance.amg import AMG_PRESETS, AMG_TERMS
from memdemo.guidance.thresholds import THRESHOLD_SCHEDULES
from memdemo.sampling import Generation
from memdemo.ui.explain import HOW_IT_WORKS
from memdemo.ui.live import Frame, LiveRun, upscale
from memdemo.ui.models import LABELS, LoadedModel, ModelRegistry, offered_models
from memdemo.ui.settings import TRANSITION_MODES, RunSettings, SettingsError, build_settings, prompt_and_seed

# Duplicated captions the shipped DDPM model copies at these seeds (benchmarks/emojimem-ddpm/samples.jsonl),
# a holdout caption it never saw, and a paraphrase.
EXAMPLES = [
    ["rescue worker's helmet", 1],
    ["warning", 1],
    ["peace symbol", 1],
    ["telephone", 0],
    ["a yellow smiling face with sunglasses", 0],
]
COMPARE = {
    "AMG main": RunSettings(),
    "AMG strong": RunSettings(amg_preset="strong"),
    "G_sim only": RunSettings(amg_terms=("sim",)),
    "G_spe + G_dup": RunSettings(amg_terms=("spe", "dup")),
    "STP": RunSettings(amg_terms=(), transition="static"),
    "DTP": RunSettings(amg_terms=(), transition="dynamic"),
    "OG + DTP": RunSettings(amg_terms=(), transition="dynamic", opposite=True),
}
TERM_LABELS = {"spe": "G_spe (despecify)", "dup": "G_dup (deduplicate)", "sim": "G_sim (dissimilarity)"}


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the engine's and torch's failures into a message in the page; the server keeps serving."""
    try:
        yield
    except (MemdemoError, SettingsError, ValueError) as error:
        raise gr.Error(str(error)) from error
    except torch.OutOfMemoryError as error:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise gr.Error("out of memory: lower the number of steps or pick a smaller model, then try again") from error


def gpu(function: Callable) -> Callable:
    """`spaces.GPU` on Hugging Face ZeroGPU Spaces; unchanged everywhere else."""
    try:
        import spaces
    except ImportError:
        return function
    return spaces.GPU(function)


def measured_models() -> str:
    """The DDPM-vs-Ambient tables written by `python -m memdemo evaluate` (never typed by hand)."""
    tables = published_results(("emojimem-ddpm", "emojimem-ambient"))
    if not tables:
        return "No measurements yet: run `python -m memdemo evaluate` (see README, Results)."
    return "\n\n".join(f"#### {LABELS[name]}\n\n{table}" for name, table in tables.items())


def build_demo(registry: ModelRegistry, default_model: str, interval: float = 0.5) -> gr.Blocks:
    """The whole page; every handler reads the shared registry and keeps its per-run state local."""
    models = offered_models()
    if default_model not in models:
        models.insert(0, default_model)
    choices = [(LABELS.get(name, name), name) for name in models]

    def loaded(model: str) -> LoadedModel:
        with user_errors():
            return registry.get(model)

    with gr.Blocks(title="memdemo: watch a diffusion model memorize") as demo:
        gr.Markdown(
            "# memdemo — watch a diffusion model memorize, and watch mitigations remove it\n"
            "Type a prompt (or click an example), pick a mitigation and press **Generate**. Left: plain "
            "classifier-free guidance; right: the same seed with the mitigation. Everything runs locally."
        )
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=2):
                    prompt = gr.Textbox(label="Prompt", placeholder="empty = unconditional", max_lines=2)
                    with gr.Row():
                        model = gr.Dropdown(choices, value=default_model, label="Model")
                        scheduler = gr.Dropdown(list(SCHEDULERS), value="ddim", label="Sampler")
                    with gr.Row():
                        seed = gr.Number(0, label="Seed", precision=0, minimum=0)
                        randomize = gr.Button("🎲", size="sm", scale=0, min_width=40)
                        steps = gr.Slider(1, 200, value=50, step=1, label="Steps")
                        cfg = gr.Slider(0, 30, value=7.5, step=0.5, label="CFG scale s0")
                with gr.Column(scale=2):
                    gr.Markdown("**Mitigation**")
                    terms = gr.CheckboxGroup(
                        [(TERM_LABELS[t], t) for t in AMG_TERMS], value=list(AMG_TERMS), label="AMG terms"
                    )
                    with gr.Row():
                        preset = gr.Radio(list(AMG_PRESETS), value="main", label="AMG preset")
                        similarity = gr.Radio(
                            [("object level (copydet)", "object"), ("pixel level (nL2)", "pixel")],
                            value="object",
                            label="Similarity σ_t (AMG and the verdicts)",
                        )
                    with gr.Accordion("AMG advanced (blank = preset)", open=False):
                        with gr.Row():
                            c1 = gr.Number(None, label="c1 (Eq. 13)")
                            c2 = gr.Number(None, label="c2 (Eq. 15)")
                            c3 = gr.Number(None, label="c3 (Eq. 17)")
                        schedule = gr.Dropdown(["preset", *THRESHOLD_SCHEDULES], value="preset", label="λ_t schedule")
                    with gr.Row():
                        transition = gr.Radio(list(TRANSITION_MODES), value="off", label="Transition point")
                        switch_t = gr.Number(500, label="switch t (static / DTP fallback)", precision=0)
                    with gr.Row():
                        opposite = gr.Checkbox(False, label="Opposite guidance before the switch")
                        og_scale = gr.Number(7.5, label="opposite guidance scale", minimum=0)
            with gr.Row():
                generate = gr.Button("Generate", variant="primary")
                stop = gr.Button("Stop", variant="stop")
            with gr.Row():
                base_image = gr.Image(label="Baseline (CFG)", format="png", interactive=False)
                base_nearest = gr.Image(label="its nearest training image", format="png", interactive=False)
                mit_image = gr.Image(label="Mitigated (same seed)", format="png", interactive=False)
                mit_nearest = gr.Image(label="its nearest training image", format="png", interactive=False)
            with gr.Row():
                base_verdict = gr.Markdown()
                mit_verdict = gr.Markdown()
            with gr.Row():
                norm_plot = gr.Plot(label="‖ε_c − ε_u‖ per step", format="png")
                similarity_plot = gr.Plot(label="σ_t per step", format="png")
            strip = gr.Image(label="x̂0 previews (top: baseline, bottom: mitigated)", format="png", interactive=False)
            summary = gr.Markdown()
            download = gr.File(label="Download the run (trace.json + images)")
            examples = gr.Examples(EXAMPLES, inputs=[prompt, seed], label="Examples (click to run)")

        controls = [prompt, seed, steps, cfg, scheduler, terms, preset, c1, c2, c3, schedule]
        controls += [transition, switch_t, opposite, og_scale, similarity]
        outputs = [base_image, base_nearest, base_verdict, mit_image, mit_nearest, mit_verdict]
        outputs += [norm_plot, similarity_plot, strip, summary, download]

        def frame_outputs(frame: Frame) -> list:
            sides = [
                value
                for name in ("baseline", "mitigated")
                for value in (frame.images[name], frame.nearest[name], frame.verdicts[name])
            ]
            bundle = frame.bundle if frame.bundle else gr.skip()
            return [*sides, frame.norm_plot, frame.similarity_plot, frame.strip, frame.summary or gr.skip(), bundle]

        @gpu
        def run(model_name: str, *values) -> Iterator[list]:
            with user_errors():
                settings, notes = build_settings(*values)
            for note in notes:
                gr.Warning(note)
            chosen = loaded(model_name)
            monitor, verdicts = chosen.judge(settings.similarity)
            with chosen.slots, user_errors():
                generation = Generation(
                    chosen.backend, settings.request(), settings.policy(monitor), monitor, settings.method
                )
                for frame in LiveRun(generation, verdicts, interval).frames():
                    yield frame_outputs(frame)
                for warning in generation.trace.run["warnings"]:
                    gr.Warning(warning)

        event = generate.click(run, [model, *controls], outputs, api_name="generate", show_progress="minimal")
        example_event = examples.load_input_event.then(run, [model, *controls], outputs, show_progress="minimal")
        stop.click(None, cancels=[event, example_event])
        randomize.click(lambda: int(torch.randint(0, 2**31 - 1, ()).item()), None, seed, api_name=False)

        with gr.Tab("Compare methods"):
            gr.Markdown("One prompt and seed, every method: the baseline first, each image with its similarity σ.")
            with gr.Row():
                compare_prompt = gr.Textbox(value=EXAMPLES[0][0], label="Prompt")
                compare_seed = gr.Number(EXAMPLES[0][1], label="Seed", precision=0, minimum=0)
                compare_model = gr.Dropdown(choices, value=default_model, label="Model")
            compare_button = gr.Button("Compare", variant="primary")
            grid = gr.Gallery(label="Baseline and every method", columns=4, object_fit="contain", format="png")

        @gpu
        def compare(model_name: str, text: str, seed_value: float) -> Iterator[list]:
            chosen = loaded(model_name)
            monitor, _ = chosen.judge()
            with user_errors():
                base, _ = prompt_and_seed(text, seed_value)
            items: list[tuple] = []
            with chosen.slots, user_errors():
                for label, method in COMPARE.items():
                    settings = replace(method, prompt=base.prompt, seed=base.seed)
                    policy = settings.policy(monitor)
                    generation = Generation(chosen.backend, settings.request(), policy, monitor, settings.method)
                    trace = generation.run()
                    if not items:
                        items.append(caption_item(generation, trace.baseline.final.similarity, "Baseline"))
                    items.append(caption_item(generation, trace.mitigated.final.similarity, label, "mitigated"))
                    yield items

        compare_button.click(compare, [compare_model, compare_prompt, compare_seed], grid, api_name="compare")

        with gr.Tab("Models"):
            gr.Markdown(measured_models())
            with gr.Row():
                models_prompt = gr.Textbox(value=EXAMPLES[0][0], label="Prompt")
                models_seed = gr.Number(EXAMPLES[0][1], label="Seed", precision=0, minimum=0)
            models_button = gr.Button("Sample both models", variant="primary")
            twins = gr.Gallery(label="EmojiMem-DDPM vs EmojiMem-Ambient (CFG 7.5, 50 DDIM steps)", columns=2)

        @gpu
        def sample_both(text: str, seed_value: float) -> list[tuple]:
            with user_errors():
                settings, _ = prompt_and_seed(text, seed_value)
            items = []
            for name in ("emojimem-ddpm", "emojimem-ambient"):
                chosen = loaded(name)
                with chosen.slots, user_errors():
                    generation = Generation(
                        chosen.backend, settings.request(), settings.policy(None), chosen.judge()[0]
                    )
                    trace = generation.run()
                    items.append(caption_item(generation, trace.baseline.final.similarity, LABELS[name]))
            return items

        models_button.click(sample_both, [models_prompt, models_seed], twins, api_name="models")

        with gr.Tab("How it works"):
            gr.Markdown(HOW_IT_WORKS, latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    return demo


def caption_item(generation: Generation, similarity: float | None, label: str, side: str = "baseline") -> tuple:
    """(image, caption) for a gallery, from a finished generation."""
    sigma = "σ not measured" if similarity is None else f"σ = {similarity:.2f}"
    return upscale(generation.images[side]), f"{label} · {sigma}"
