"""The Gradio page: inputs and mitigation panel, streamed outputs, and the Compare / Models / How it works tabs."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from functools import partial

import gradio as gr
import torch

from memdemo.backends import SCHEDULERS, checked_device
from memdemo.data.emojimem import DEFAULT_DIR, EmojiMem
from memdemo.errors import MemdemoError
from memdemo.evaluation.summary import plain_legend, plain_table, published_rows, takeaway
from memdemo.guidance import METHODS, VARIANTS, Param, build_policy, method_spec
from memdemo.paths import assets_dir
from memdemo.sampling import Generation
from memdemo.ui.explain import HOW_IT_WORKS
from memdemo.ui.live import Frame, LiveRun, Verdicts, stopped_text, upscale
from memdemo.ui.models import (
    LABELS,
    LoadedModel,
    ModelRegistry,
    has_reference,
    is_stable_diffusion,
    model_note,
    offered_models,
)
from memdemo.ui.reference_upload import MAX_FILE_BYTES, MAX_FILES, SessionReference, build_reference, refusals
from memdemo.ui.run_folders import RunFolders
from memdemo.ui.sd_examples import NOTE as SD_EXAMPLES_NOTE
from memdemo.ui.sd_examples import sd_card, sd_memorized_prompts
from memdemo.ui.settings import (
    DEFAULT_METHOD,
    build_settings,
    checked_choice,
    control_keys,
    param_key,
    prompt_and_seed,
    run_timesteps,
    transition_notes,
)

EXAMPLES_FILE = "examples.json"
log = logging.getLogger("memdemo.ui")


def load_examples() -> dict:
    """The grouped examples `python -m benchmarks.examples` measured on the shipped model (assets/examples.json)."""
    path = assets_dir() / EXAMPLES_FILE
    if not path.is_file():
        raise MemdemoError(f"{path} is missing; make it with `python -m benchmarks.examples`")
    return json.loads(path.read_text(encoding="utf-8"))


def memorized_captions() -> list[str]:
    """Every caption duplicated in EmojiMem's training set, sorted, for the searchable list."""
    return sorted(record.caption for record in EmojiMem.load(DEFAULT_DIR).records if record.copies > 1)


def grouped_examples(
    card: dict, inputs: list[gr.components.Component], method: gr.components.Component | None = None
) -> list[gr.Examples]:
    """One clickable gr.Examples per group of a card (assets/examples.json, or sd_examples.sd_card()); with `method`,
    each example also sets the method it was measured with."""

    def values(example: dict) -> list:
        return [example["prompt"], example["seed"]] + ([example_method(card, example)] if method else [])

    def label(example: dict) -> str:
        name = f" · {method_spec(example_method(card, example)).label}" if method else ""
        return f"{example['prompt']} · seed {example['seed']}{name} — {example['expect']}"

    return [
        gr.Examples(
            [values(e) for e in rows],
            inputs=inputs + ([method] if method else []),
            label=title,
            example_labels=[label(e) for e in rows],
        )
        for group, title in card["groups"].items()
        if (rows := [e for e in card["examples"] if e["group"] == group])
    ]


def example_method(card: dict, example: dict) -> str:
    """The method an example was measured with: its own, else the card's, else the page's default."""
    return example.get("method", card.get("method", DEFAULT_METHOD))


def first_example(card: dict) -> tuple[str, int]:
    example = card["examples"][0]
    return example["prompt"], example["seed"]


def unknown_prompt_note(prompt: str, captions: set[str]) -> str | None:
    """For EmojiMem: a prompt that is no emoji name cannot be a copy of anything, and the person should know why."""
    if not prompt or prompt in captions:
        return None
    return (
        f"EmojiMem knows only emoji names (such as “warning”), and “{prompt}” is not one: expect some emoji, not a "
        "copy. Pick a memorized caption to see a copy."
    )


# Narrow screens (passed to launch()): tables scroll sideways instead of wrapping a letter a line.
CSS = """
.prose table { display: block; overflow-x: auto; white-space: nowrap; }
@media (max-width: 600px) { .prose { font-size: 0.9em; } }
"""
# AMG's ablations shown beside every registered method in the Compare tab.
COMPARE_EXTRAS = ("amg-strong", "amg-sim", "amg-no-sim")
CHOICE_LABELS = {"spe": "G_spe (despecify)", "dup": "G_dup (deduplicate)", "sim": "G_sim (dissimilarity)"}


def compare_variants() -> list[str]:
    """Every registered method with its defaults, then AMG's ablations (read at build time, from the registry)."""
    names = [name for name in METHODS if name != "baseline"]
    return names[:1] + [name for name in COMPARE_EXTRAS if name in VARIANTS] + names[1:]


def param_component(param: Param) -> gr.components.Component:
    """A control for one method parameter; ranges are checked by the handler, so the message is ours."""
    if param.kind is bool:
        return gr.Checkbox(param.default, label=param.label, info=param.help)
    if param.kind is tuple:
        choices = [(CHOICE_LABELS.get(choice, choice), choice) for choice in param.choices]
        return gr.CheckboxGroup(choices, value=list(param.default), label=param.label, info=param.help)
    if param.kind is str:
        blank = [("preset", "")] if param.default is None else []
        return gr.Dropdown(blank + list(param.choices), value=param.default or "", label=param.label, info=param.help)
    return gr.Number(param.default, label=param.label, info=param.help, precision=0 if param.kind is int else None)


def method_about(name: str) -> str:
    spec = method_spec(name)
    return f"*{spec.description}* ({spec.paper})"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn input and setup errors (ours: their message names the fix) and out-of-memory into a message in the page,
    logged as one line; anything else is a bug, logged with its traceback, and the client sees no exception text."""
    try:
        yield
    except MemdemoError as error:
        log.warning("refused: %s", error)
        raise gr.Error(str(error), print_exception=False) from error
    except torch.OutOfMemoryError as error:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise gr.Error("out of memory: lower the number of steps or pick a smaller model, then try again") from error


# ZeroGPU time budget per request, in seconds: a fixed start-up share plus a per-step share for the two trajectories
# (AMG's G_sim adds a backward pass through the decoder). Upper bounds for SD v1.4 at 512², not measured on a Space.
GPU_SECONDS_FIXED, GPU_SECONDS_PER_STEP, GPU_AMG_FACTOR = 20.0, 0.4, 2.0
COMPARE_GPU_SECONDS = 300
UPLOAD_GPU_SECONDS = 60  # embedding at most MAX_FILES reference images with a ViT


def gpu_seconds(steps: object, method: object) -> int:
    """The `spaces.GPU` duration of one Generate run, sized from its step count and method."""
    count = steps if isinstance(steps, (int, float)) and 1 <= steps <= 200 else 50
    factor = GPU_AMG_FACTOR if method == "amg" else 1.0
    return int(GPU_SECONDS_FIXED + count * GPU_SECONDS_PER_STEP * factor)


def gpu(function: Callable, duration: Callable | int = 60) -> Callable:
    """`spaces.GPU` on Hugging Face ZeroGPU Spaces, with a duration in seconds (or a function of the handler's
    arguments that returns one); unchanged everywhere else."""
    try:
        import spaces
    except ImportError:
        return function
    return spaces.GPU(duration=duration)(function)


def measured_models() -> str:
    """The DDPM-vs-Ambient results written by `python -m memdemo evaluate`, in plain words (never typed by hand)."""
    rows = published_rows(("emojimem-ddpm", "emojimem-ambient"))
    if not rows:
        return "No measurements yet: run `python -m memdemo evaluate` (see README, Results)."
    parts = [f"**In short.** {takeaway(rows)}", plain_legend()]
    parts += [f"#### {LABELS[name]}\n\n" + "\n".join(plain_table(table)) for name, table in rows.items()]
    return "\n\n".join(parts)


def build_demo(registry: ModelRegistry, default_model: str, interval: float = 0.5) -> gr.Blocks:
    """The whole page; every handler reads the shared registry and keeps its per-run state local."""
    models = offered_models()
    if default_model not in models:
        models.insert(0, default_model)
    choices = [(LABELS.get(name, name), name) for name in models]

    def loaded(model: str) -> LoadedModel:
        with user_errors():
            return registry.get(checked_choice("model", model, tuple(models)))

    card, memorized = load_examples(), memorized_captions()
    run_folders = RunFolders()
    atexit.register(run_folders.cleanup)
    captions = set(EmojiMem.load(DEFAULT_DIR).captions)
    example_prompt, example_seed = first_example(card)
    sd_default = is_stable_diffusion(default_model)

    def memorized_for(model_name: str) -> list[str]:
        return sd_memorized_prompts() if is_stable_diffusion(model_name) else memorized

    # Gradio caches every streamed frame as a file: sweep files older than an hour, every ten minutes.
    with gr.Blocks(title="memdemo: watch a diffusion model memorize", delete_cache=(600, 3600)) as demo:
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
                    model_info = gr.Markdown(model_note(default_model), visible=bool(model_note(default_model)))
                    with gr.Accordion(
                        "Reference images: a similarity reference for this session (σ_t, AMG, verdicts)",
                        open=False,
                        visible=not has_reference(default_model),
                    ) as reference_panel:
                        reference_files = gr.File(
                            file_count="multiple",
                            label=f"Up to {MAX_FILES} images (PNG, JPEG, WebP), {MAX_FILE_BYTES // 2**20} MB each; "
                            "captions are the file names",
                        )
                        reference_status = gr.Markdown()
                    reference = gr.State(None)  # this session's SessionReference, dropped with the session
                    with gr.Row():
                        seed = gr.Number(0, label="Seed", precision=0)
                        randomize = gr.Button("🎲", size="sm", scale=0, min_width=40)
                        steps = gr.Slider(1, 200, value=50, step=1, label="Steps")
                        cfg = gr.Slider(0, 30, value=7.5, step=0.5, label="CFG scale s0")
                    method = gr.Radio(
                        [(spec.label, spec.name) for spec in METHODS.values()],
                        value=DEFAULT_METHOD,
                        label="Mitigation",
                        render=False,  # placed in the right column; EmojiMem's examples set it too
                    )
                    with gr.Accordion("Examples: click one to run it", open=True):
                        with gr.Column(visible=not sd_default) as emojimem_examples:
                            example_sets = grouped_examples(card, [prompt, seed], method)
                        with gr.Column(visible=sd_default) as sd_examples:
                            gr.Markdown(SD_EXAMPLES_NOTE)
                            example_sets += grouped_examples(sd_card(), [prompt, seed])
                        with gr.Row():
                            search = gr.Dropdown(
                                memorized_for(default_model),
                                value=None,
                                label="All memorized captions (type to search)",
                                scale=3,
                            )
                            lucky = gr.Button("Random memorized caption", scale=1)
                with gr.Column(scale=2):
                    method.render()
                    about = gr.Markdown(method_about(DEFAULT_METHOD))
                    similarity = gr.Radio(
                        [("object level (copydet)", "object"), ("pixel level (nL2)", "pixel")],
                        value="object",
                        label="Similarity σ_t (AMG and the verdicts)",
                    )
                    options: dict[gr.components.Component, str] = {}
                    groups = {}
                    for spec in METHODS.values():
                        with gr.Group(visible=spec.name == DEFAULT_METHOD) as groups[spec.name]:
                            for param in (p for p in spec.params if not p.advanced):
                                options[param_component(param)] = param_key(spec.name, param.name)
                            advanced = [p for p in spec.params if p.advanced]
                            if advanced:
                                with gr.Accordion(f"{spec.label}: advanced (blank = preset)", open=False):
                                    for param in advanced:
                                        options[param_component(param)] = param_key(spec.name, param.name)
            with gr.Row():
                generate = gr.Button("Generate", variant="primary")
                stop = gr.Button("Stop", variant="stop")
            summary = gr.Markdown()
            with gr.Row(equal_height=False):
                with gr.Column(min_width=200):
                    base_image = gr.Image(label="Baseline (plain CFG)", format="png", interactive=False)
                    base_verdict = gr.Markdown()
                    base_nearest = gr.Image(
                        label="its nearest training image", format="png", interactive=False, height=140
                    )
                with gr.Column(min_width=200):
                    mit_image = gr.Image(label="Mitigated (same seed)", format="png", interactive=False)
                    mit_verdict = gr.Markdown()
                    mit_nearest = gr.Image(
                        label="its nearest training image", format="png", interactive=False, height=140
                    )
                with gr.Column(min_width=200):
                    own_image = gr.Image(label="the prompt's own training image", format="png", interactive=False)
                    own_text = gr.Markdown()
            slider = gr.ImageSlider(label="Before / after: drag to compare", format="png", max_height=512)
            with gr.Row():
                norm_plot = gr.Plot(label="d_t = ‖ε_c − ε_u‖ per step", format="png", min_width=300)
                similarity_plot = gr.Plot(label="guide signal σ_t vs λ_t", format="png", min_width=300)
            strip = gr.Image(label="x̂0 previews (top: baseline, bottom: mitigated)", format="png", interactive=False)
            download = gr.File(label="Download the run: trace, images, plot, verdicts, the command that reruns it")
            progress = gr.State({})

        names = {model: "model", prompt: "prompt", seed: "seed", steps: "steps", cfg: "cfg", scheduler: "scheduler"}
        names |= {method: "method", similarity: "similarity", **options}
        assert list(names.values()) == control_keys(), "the page's controls must follow settings.control_keys()"
        controls = list(names)  # a fixed order, so that API clients see stable parameters

        def show_method(chosen: str) -> list:
            return [method_about(chosen), *(gr.update(visible=name == chosen) for name in groups)]

        method.change(show_method, method, [about, *groups.values()], api_name=False)

        def methods_for(model_name: str, uploaded: SessionReference | None) -> list:
            """Only the methods that can run on the chosen model (AMG needs a reference set, or uploaded images)."""
            referenced = has_reference(model_name) or uploaded is not None
            usable = [(s.label, s.name) for s in METHODS.values() if referenced or not s.needs_monitor]
            chosen = DEFAULT_METHOD if referenced else "dtp"
            note = model_note(model_name, uploaded is not None)
            return [gr.update(choices=usable, value=chosen), gr.update(value=note, visible=bool(note))]

        model.change(methods_for, [model, reference], [method, model_info], api_name=False)

        def show_model_panels(model_name: str) -> list:
            """The chosen model's examples and memorized prompts, and the upload where the model has no reference."""
            sd = is_stable_diffusion(model_name)
            return [
                gr.update(visible=not sd),
                gr.update(visible=sd),
                gr.update(choices=memorized_for(model_name), value=None),
                gr.update(visible=not has_reference(model_name)),
            ]

        panels = [emojimem_examples, sd_examples, search, reference_panel]
        model.change(show_model_panels, model, panels, api_name=False)

        @partial(gpu, duration=UPLOAD_GPU_SECONDS)
        def use_reference(files: list[str] | None, model_name: str) -> list:
            """Index this session's uploaded reference images (no files: drop the reference)."""
            uploaded = None
            if files:
                with refusals():
                    uploaded = build_reference(files, device=checked_device(registry.device))
            status = uploaded.describe() if uploaded else ""
            return [uploaded, status, *methods_for(model_name, uploaded)]

        reference_outputs = [reference, reference_status, method, model_info]
        reference_files.change(use_reference, [reference_files, model], reference_outputs, api_name="reference")
        outputs = [base_image, base_nearest, base_verdict, mit_image, mit_nearest, mit_verdict]
        outputs += [norm_plot, similarity_plot, strip, summary, slider, own_image, own_text, progress, download]

        def frame_outputs(frame: Frame) -> list:
            sides = [
                value
                for name in ("baseline", "mitigated")
                for value in (frame.images[name], frame.nearest[name], frame.verdicts[name])
            ]
            state = {"step": frame.step, "total": frame.total, "judgements": frame.judgements}
            state["done"] = bool(frame.summary)
            running = f"Step {frame.step} of {frame.total}…" if not frame.summary else frame.summary
            # None, never gr.skip(): Gradio keeps a new copy of a skipped component in the session every time
            # (benchmarks/memory_growth-served.md)
            pair = (frame.images["baseline"], frame.images["mitigated"]) if frame.summary else None
            return [
                *sides, frame.norm_plot, frame.similarity_plot, frame.strip, running, pair,
                frame.own_image, frame.own_text, state, frame.bundle,
            ]  # fmt: skip

        def on_stop(state: dict) -> list:
            if not state or state.get("done"):
                return [gr.skip()] * 3
            text, verdicts = stopped_text(state["step"], state["total"], state["judgements"])
            return [text, verdicts["baseline"], verdicts["mitigated"]]

        def run_duration(*values) -> int:
            named = dict(zip(names.values(), values, strict=False))
            return gpu_seconds(named.get("steps"), named.get("method"))

        @partial(gpu, duration=run_duration)
        def run(*inputs) -> Iterator[list]:
            *values, uploaded = inputs
            named = dict(zip(names.values(), values, strict=True))
            model_name = named.pop("model")
            with user_errors():
                settings, notes = build_settings(named)
            chosen = loaded(model_name)
            for note in notes + transition_notes(settings, run_timesteps(chosen.backend, settings)):
                gr.Warning(note)
            monitor, verdicts = chosen.judge(settings.similarity, uploaded)
            if not is_stable_diffusion(model_name) and (note := unknown_prompt_note(settings.prompt, captions)):
                gr.Info(note)
            with chosen.slots, user_errors():
                policy = settings.policy(monitor)
                generation = Generation(
                    chosen.backend, settings.request(), policy, monitor, settings.method, settings.params
                )
                yield [None] * (len(outputs) - 2) + [{}, None]  # a new run: the page clears, Stop refers to it
                for frame in LiveRun(generation, verdicts, interval, run_folders.new()).frames():
                    yield frame_outputs(frame)
                for warning in generation.trace.run.warnings:
                    gr.Warning(warning)

        run_inputs = [*controls, reference]
        event = generate.click(run, run_inputs, outputs, api_name="generate", show_progress="minimal", preprocess=False)
        events = [event]
        events += [
            e.load_input_event.then(run, run_inputs, outputs, show_progress="minimal", preprocess=False)
            for e in example_sets
        ]
        search.input(lambda caption: caption, search, prompt, api_name=False)

        def random_memorized(model_name: str) -> str:
            prompts = memorized_for(model_name)
            return prompts[int(torch.randint(len(prompts), ()))]

        lucky.click(random_memorized, model, prompt, api_name=False)
        stop.click(on_stop, progress, [summary, base_verdict, mit_verdict], cancels=events, api_name=False)
        randomize.click(lambda: int(torch.randint(0, 2**31 - 1, ()).item()), None, seed, api_name=False)

        with gr.Tab("Compare methods"):
            gr.Markdown(
                "One prompt and seed, every method. How to read it: each caption gives the copy detector's verdict "
                "(copydet cosine to the nearest training image against its calibrated τ; above τ is a copy) and how "
                "many steps the method acted on. The first image is the prompt's own training image, when it has one."
            )
            with gr.Row():
                compare_prompt = gr.Textbox(value=example_prompt, label="Prompt")
                compare_seed = gr.Number(example_seed, label="Seed", precision=0)
                compare_model = gr.Dropdown(choices, value=default_model, label="Model")
            compare_button = gr.Button("Compare", variant="primary")
            grid = gr.Gallery(label="Baseline and every method", columns=4, object_fit="contain", format="png")

        @partial(gpu, duration=COMPARE_GPU_SECONDS)
        def compare(model_name: str, text: str, seed_value: float, uploaded: SessionReference | None) -> Iterator[list]:
            chosen = loaded(model_name)
            monitor, verdicts = chosen.judge(uploaded=uploaded)
            with user_errors():
                base, notes = prompt_and_seed(text, seed_value)
            for note in notes:
                gr.Warning(note)
            own = verdicts.own_image(base.prompt)
            items: list[tuple] = [] if own is None else [(own, f"training image of “{base.prompt}”")]
            with chosen.slots, user_errors():
                for name in compare_variants():
                    variant = VARIANTS[name]
                    if monitor is None and method_spec(variant.method).needs_monitor:
                        continue
                    policy = build_policy(variant.method, variant.params, base.cfg, monitor)
                    generation = Generation(chosen.backend, base.request(), policy, monitor, name)
                    generation.run()
                    if len(items) < 1 + (own is not None):
                        items.append(caption_item(generation, verdicts, "Baseline"))
                    label = variant.label or method_spec(variant.method).label
                    items.append(caption_item(generation, verdicts, label, "mitigated"))
                    yield items

        compare_inputs = [compare_model, compare_prompt, compare_seed, reference]
        compare_button.click(compare, compare_inputs, grid, api_name="compare", preprocess=False)

        with gr.Tab("Models"):
            gr.Markdown(measured_models())
            with gr.Row():
                models_prompt = gr.Textbox(value=example_prompt, label="Prompt")
                models_seed = gr.Number(example_seed, label="Seed", precision=0)
            models_button = gr.Button("Sample both models", variant="primary")
            twins = gr.Gallery(label="EmojiMem-DDPM vs EmojiMem-Ambient (CFG 7.5, 50 DDIM steps)", columns=2)

        @gpu
        def sample_both(text: str, seed_value: float) -> list[tuple]:
            with user_errors():
                settings, notes = prompt_and_seed(text, seed_value)
            for note in notes:
                gr.Warning(note)
            items = []
            for name in ("emojimem-ddpm", "emojimem-ambient"):
                chosen = loaded(name)
                monitor, verdicts = chosen.judge()
                with chosen.slots, user_errors():
                    generation = Generation(chosen.backend, settings.request(), settings.policy(None), monitor)
                    generation.run()
                    items.append(caption_item(generation, verdicts, LABELS[name]))
            return items

        models_button.click(sample_both, [models_prompt, models_seed], twins, api_name="models", preprocess=False)

        with gr.Tab("How it works"):
            gr.Markdown(HOW_IT_WORKS, latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    return demo


def caption_item(generation: Generation, verdicts: Verdicts, label: str, side: str = "baseline") -> tuple:
    """(image, caption) for a gallery: the scorer's verdict against τ and, for a mitigation, the steps it acted on."""
    image = generation.images[side]
    judgement = verdicts.judgements({side: image}, generation.request.prompt)[side]
    verdict = "not judged" if judgement is None else f"{judgement.word()} ({judgement.comparison()})"
    steps = getattr(generation.trace, side).steps
    acted = f" · acted on {sum(s.active for s in steps)} of {len(steps)} steps" if side == "mitigated" else ""
    return upscale(image), f"{label} · {verdict}{acted}"
