"""The demo: control checks, run summaries, the page builds, and a client drives baseline and AMG end to end."""

from __future__ import annotations

import json
import shlex
import socket
import zipfile

import gradio as gr
import pytest
from gradio_client import Client

from memdemo.backends import ModelError
from memdemo.cli import build_parser
from memdemo.data.emojimem import EmojiMem
from memdemo.evaluation.scoring import CopydetScorer
from memdemo.guidance import VARIANTS
from memdemo.trace import RunInfo, Step, Trace
from memdemo.ui.judge import Judge, Judgement, describe, own_line
from memdemo.ui.layout import build_demo, compare_variants, grouped_examples, user_errors
from memdemo.ui.live import stopped_text, summarize
from memdemo.ui.models import ModelRegistry, has_reference, model_note, offered_models
from memdemo.ui.settings import (
    MAX_PROMPT_CHARS,
    SettingsError,
    api_arguments,
    build_settings,
    clean_prompt,
    prompt_and_seed,
)


def controls(prompt="warning", seed=1, steps=4, method="amg", **overrides) -> dict:
    return {"prompt": prompt, "seed": seed, "steps": steps, "cfg": 7.5, "method": method, **overrides}


def arguments(**values) -> list:
    return api_arguments("emojimem-ddpm", controls(**values))


def test_prompt_cleaning_warns_on_empty_and_truncates_long_prompts():
    assert clean_prompt("  red apple ") == ("red apple", [])
    prompt, notes = clean_prompt(None)
    assert prompt == "" and "unconditional" in notes[0]
    prompt, notes = clean_prompt("x" * 10_000)
    assert len(prompt) == MAX_PROMPT_CHARS and "10,000" in notes[0]
    with pytest.raises(SettingsError, match="not valid Unicode text"):
        clean_prompt("warning \ud800")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 0}, "steps must be between 1 and 200"),
        ({"cfg": 99.0}, "CFG scale must be between 0 and 30"),
        ({"seed": -1}, "seed must be between"),
        ({"seed": 1.5}, "seed must be a whole number"),
        ({"seed": "7"}, "seed must be a number"),
        ({"amg.c3": float("nan")}, r"c3 \(Eq. 17\) must be between 0 and 100000, got nan"),
        ({"amg.c1": "3"}, r"c1 \(Eq. 13\) must be a number between 0 and 1000"),
        ({"method": "sideways"}, "unknown method 'sideways'; choose one of baseline: plain classifier-free guidance"),
        ({"amg.preset": "gentle"}, "AMG preset must be one of main, strong, official-sd"),
        ({"amg.terms": ["spe", "xyz"]}, "AMG terms must be a subset of spe, dup, sim"),
        ({"amg.sim_through_unet": "yes"}, "G_sim through the UNet must be true or false"),
        ({"method": "stp", "stp.switch_t": -5}, "switch t must be between 0 and 999"),
        ({"similarity": "semantic"}, "similarity must be one of object, pixel"),
        ({"amg.c9": 1.0}, "unknown setting amg.c9"),
    ],
)
def test_bad_numbers_and_choices_are_rejected_with_the_fix(overrides, message):
    with pytest.raises(SettingsError, match=message):
        build_settings(controls(**overrides))


@pytest.mark.parametrize("method", ["baseline", "amg", "stp", "dtp", "og-stp", "og-dtp"])
def test_every_method_the_page_offers_builds_with_its_defaults(method):
    settings, _ = build_settings(controls(method=method))
    assert settings.method == method and settings.policy(None if method != "amg" else _monitor()).name == method


def _monitor():
    from memdemo.ui.models import ModelRegistry

    return ModelRegistry("cpu").get("emojimem-ddpm").judge("object")[0]


def test_only_the_chosen_method_reads_its_options():
    settings, _ = build_settings(controls(method="dtp", **{"amg.c3": 5.0, "dtp.switch_t": 650}))
    assert settings.params == {"switch_t": 650, "pre_scale": 0.0}


def test_opposite_scale_becomes_a_negative_pre_switch_scale():
    settings, _ = build_settings(controls(method="og-dtp", **{"og-dtp.og_scale": 3.0}))
    assert settings.policy(None).pre_scale == -3.0
    settings, _ = build_settings(controls(method="og-stp", cfg=5.0))
    assert settings.policy(None).pre_scale == -5.0
    assert prompt_and_seed("", 7)[0].method == "baseline"


def synthetic_trace(method: str = "amg") -> Trace:
    trace = Trace(RunInfo("emojimem-ddpm", "warning", 0, method, seconds=1.25))
    for index, (base, mitigated, active) in enumerate([(0.2, 0.2, False), (0.6, 0.5, True), (0.7, 0.3, True)]):
        trace.baseline.steps.append(Step(index, 999 - index, 0.5, 1.0, similarity=base, threshold=0.45))
        terms = ["sim"] if active else []
        trace.mitigated.steps.append(
            Step(index, 999 - index, 0.5, 1.0, similarity=mitigated, threshold=0.45, active=active, terms=terms)
        )
    return trace


def judged(similarity: float, nearest: int = 3, own: int | None = 3) -> Judgement:
    return Judgement(similarity, 0.9, nearest, "warning" if nearest == 3 else "peace symbol", own, similarity)


@pytest.mark.parametrize(("base", "mitigated"), [(0.97, 0.5), (0.97, 0.95), (0.5, 0.4), (0.95, 0.91)])
def test_the_summary_never_contradicts_the_verdicts(base, mitigated):
    judgements = {"baseline": judged(base), "mitigated": judged(mitigated, nearest=7)}
    summary = summarize(synthetic_trace(), judgements, guide_threshold=0.45)
    for label, name in (("Baseline", "baseline"), ("Mitigated", "mitigated")):
        copy = "**COPY**" in describe(judgements[name], "final")
        assert (f"{label}: COPY" in summary) == copy and (f"{label}: not a copy" in summary) == (not copy)
        assert judgements[name].comparison() in summary
    assert "σ_t exceeded λ_t on 1 of 3 steps; AMG acted on 2 (G_sim on 2)" in summary and "1.2 s" in summary


def test_verdict_lines_name_the_scorer_tau_and_the_own_image():
    final = describe(judged(0.97), "final")
    assert final.startswith("**COPY** — copydet 0.97 > τ = 0.90") and "the prompt's own training image" in final
    live = describe(judged(0.5, nearest=7), "live")
    assert "current x̂0, provisional" in live and "opacity" in live and "**not a copy**" in live
    summary, stopped = stopped_text(12, 50, {"baseline": judged(0.97), "mitigated": judged(0.5)})
    assert summary.startswith("Stopped at step 12 of 50") and "no final verdict" in stopped["baseline"]
    assert "baseline 0.97, mitigated 0.50" in own_line(judged(0.97), judged(0.5))
    assert "not a training caption" in own_line(judged(0.9, own=None), judged(0.9, own=None))
    assert "not judged" in describe(None, "final") or "not judged" in describe(None, "final").lower()


def test_the_judge_finds_the_copy_and_the_prompts_own_image():
    dataset = EmojiMem.load()
    judge = Judge(CopydetScorer.load(), dataset)
    warning = dataset.images[dataset.captions.index("warning")]
    judgement = judge.judge(warning, "warning")
    assert judgement.copy and judgement.nearest_is_own and judgement.own_similarity == pytest.approx(1.0, abs=1e-4)
    holdout = dataset.records[dataset.ids("holdout")[0]]
    other = judge.judge(dataset.images[holdout.id], holdout.caption)
    assert other.own_id is None and other.own_similarity is None and not other.nearest_is_own


def test_an_example_sets_the_method_it_was_measured_with():
    card = {
        "method": "amg",
        "groups": {"memorized": "Memorized"},
        "examples": [
            {"group": "memorized", "prompt": "warning", "seed": 1, "method": "stp", "expect": "x"},
            {"group": "memorized", "prompt": "penguin", "seed": 0, "expect": "y"},
        ],
    }
    with gr.Blocks():
        prompt, seed, method = gr.Textbox(), gr.Number(), gr.Radio(["amg", "stp"])
        (with_method,) = grouped_examples(card, [prompt, seed], method)
        (without,) = grouped_examples(card, [prompt, seed])
    assert with_method.dataset.samples == [["warning", 1, "stp"], ["penguin", 0, "amg"]]  # the card's method
    assert with_method.inputs[-1] is method and len(without.inputs) == 2
    assert without.dataset.samples == [["warning", 1], ["penguin", 0]]
    assert with_method.example_labels[0].startswith("warning · seed 1 · Static transition point — ")


def test_amg_is_shown_as_unavailable_without_a_reference_set():
    assert has_reference("emojimem-v2-ddpm") and model_note("emojimem-v2-ddpm") == ""
    note = model_note("sd-v1-4")
    assert "AMG is unavailable here" in note and "index build --images FOLDER --features dinov2" in note


def test_stable_diffusion_is_offered_only_with_local_weights_and_fails_with_a_message():
    assert "sd-v1-4" not in offered_models()
    with pytest.raises(gr.Error, match="cannot load Stable Diffusion"), user_errors():
        ModelRegistry("cpu").get("sd-v1-4")
    with pytest.raises(ModelError):
        ModelRegistry("cpu").get("no-such-model")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def client():
    demo = build_demo(ModelRegistry("cpu"), "emojimem-ddpm", interval=0.0)
    demo.queue(default_concurrency_limit=2)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    demo.close()


def run_trace(result) -> dict:
    with zipfile.ZipFile(result[-1]) as bundle:
        names = set(bundle.namelist())
        assert {"trace.json", "baseline.png", "mitigated.png", "plot.png", "verdicts.md", "command.txt"} <= names
        assert {"baseline-256px.png", "baseline-nearest-training-image.png"} <= names
        command = shlex.split(bundle.read("command.txt").decode())
        trace = json.loads(bundle.read("trace.json"))
    assert command[:3] == ["python", "-m", "memdemo"]
    args = build_parser().parse_args(command[3:])
    assert (args.model, args.prompt, args.seed, args.method) == (
        trace["run"]["model"], trace["run"]["prompt"], trace["run"]["seed"], trace["run"]["method"]
    )  # fmt: skip
    return trace


@pytest.mark.parametrize("method", ["baseline", "amg", "og-dtp"])
def test_client_runs_each_method_and_receives_images_and_trace(client, method):
    result = client.predict(*arguments(method=method), api_name="/generate")
    base_image, _, base_verdict, mitigated_image, _, _, _, _, strip, summary, slider, own, own_text, *_ = result
    assert all(path for path in (base_image, mitigated_image, strip, own)) and len(slider) == 2
    assert "copydet" in base_verdict and "τ =" in base_verdict and "steps in" in summary
    assert "Similarity to the prompt's own training image" in own_text
    trace = run_trace(result)
    assert trace["run"]["method"] == method and trace["run"]["prompt"] == "warning"
    assert len(trace["trajectories"]["mitigated"]["steps"]) == 4


def test_the_similarity_level_picks_the_index_amg_follows(client):
    """Object level: AMG gates on the copydet-guide cosine; pixel level: on σ = 1 − nL2/2 (nL2 recorded)."""
    for level, feature in (("object", "copydet-guide"), ("pixel", "pixel")):
        trace = run_trace(client.predict(*arguments(similarity=level), api_name="/generate"))
        assert trace["run"]["feature"] == feature
        nl2 = trace["trajectories"]["mitigated"]["steps"][-1]["nl2"]
        assert (nl2 is None) == (level == "object")


def test_client_gets_a_message_for_bad_input_and_the_app_keeps_serving(client):
    with pytest.raises(Exception, match="steps must be between 1 and 200, got 0"):
        client.predict(*arguments(steps=0), api_name="/generate")
    with pytest.raises(Exception, match=r"c3 \(Eq. 17\) must be between 0 and 100000"):
        client.predict(*arguments(**{"amg.c3": -5.0}), api_name="/generate")
    result = client.predict(*arguments(prompt="", method="baseline"), api_name="/generate")
    assert run_trace(result)["run"]["prompt"] == ""


def test_two_clients_at_once_each_get_their_own_run(client):
    jobs = [client.submit(*arguments(seed=seed), api_name="/generate") for seed in (3, 4)]
    seeds = [run_trace(job.result(timeout=120))["run"]["seed"] for job in jobs]
    assert seeds == [3, 4]


def test_compare_tab_shows_the_training_image_then_every_method_with_its_verdict(client):
    items = client.predict("emojimem-ddpm", "warning", 1, api_name="/compare")
    captions = [item["caption"] for item in items]
    labels = [VARIANTS[name].label for name in compare_variants()]
    assert captions[0] == "training image of “warning”" and len(captions) == 2 + len(labels)
    assert captions[1].startswith("Baseline · ") and "τ = " in captions[1]
    assert [caption.split(" · ")[0] for caption in captions[2:]] == labels
    assert all("copydet" in caption and "acted on" in caption for caption in captions[2:])
