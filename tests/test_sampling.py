import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from tiny_sd import tiny_components

from memdemo.backends import ModelError, load_backend
from memdemo.backends.stable_diffusion import StableDiffusionBackend
from memdemo.errors import MemdemoError
from memdemo.guidance import GuidanceError, SimilarityMonitor, build_policy
from memdemo.guidance.amg import AMGPolicy, amg_config
from memdemo.reference import ReferenceIndex
from memdemo.reference.index import IndexEntry
from memdemo.sampling import Generation, Request
from memdemo.trace import Trace


@pytest.fixture(scope="module")
def tiny_sd():
    parts = tiny_components()
    backend = StableDiffusionBackend(
        "tiny-sd", parts["unet"], parts["vae"], parts["text_encoder"], parts["tokenizer"], parts["scheduler"].config
    )
    return parts, backend


@pytest.fixture(scope="module")
def emojimem_random():
    return load_backend("emojimem-random", "cpu")


@pytest.fixture(scope="module")
def pixel_monitor(emojimem_random):
    from conftest import SHIPPED_PIXEL_INDEX

    return SimilarityMonitor(emojimem_random, ReferenceIndex.load(SHIPPED_PIXEL_INDEX))


@pytest.mark.parametrize("steps", [3, 6])
def test_mitigations_off_reproduce_the_diffusers_pipeline(tiny_sd, steps):
    parts, backend = tiny_sd
    pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator("cpu").manual_seed(7)
    expected = pipe("a cat", num_inference_steps=steps, guidance_scale=7.5, generator=generator, output_type="np")
    generation = Generation(
        backend, Request("a cat", seed=7, steps=steps, cfg=7.5), build_policy("baseline", {}, 7.5, None)
    )
    generation.run()
    for ours in generation.decoded:
        assert np.abs(ours.permute(1, 2, 0).numpy() - expected.images[0]).max() <= 1e-4


@pytest.mark.parametrize("method", ["og-dtp", "amg", "baseline"])
def test_trace_records_every_step_and_round_trips_through_json(emojimem_random, pixel_monitor, method):
    # Review defect 5: an AMG trace came back with its terms tuple as a list, so the round trip was unequal.
    policy = build_policy(method, {}, 7.5, pixel_monitor)
    generation = Generation(emojimem_random, Request("grinning face", steps=8), policy, pixel_monitor, method)
    updates = list(generation)
    trace = generation.trace
    assert len(updates) == len(trace.baseline.steps) == len(trace.mitigated.steps) == 8
    assert [s.t for s in trace.mitigated.steps] == sorted((s.t for s in trace.mitigated.steps), reverse=True)
    assert all(s.similarity is not None and s.nearest_caption for s in trace.baseline.steps)
    assert trace.mitigated.final.nearest_id is not None
    assert Trace.from_json(trace.to_json()) == trace
    if method == "og-dtp":
        assert trace.run.transition is not None and trace.run.transition.step == trace.mitigated.transition_step
    data = trace.to_dict()
    assert set(data["run"]) >= {"model", "prompt", "seed", "method", "params"}
    step = data["trajectories"]["mitigated"]["steps"][0]
    assert set(step) >= {"t", "cond_uncond_norm", "similarity", "threshold", "active", "scales"}


def test_a_non_finite_parameter_never_reaches_trace_json(emojimem_random):
    generation = Generation(emojimem_random, Request("cat", steps=1), build_policy("baseline", {}, 7.5, None))
    trace = generation.run()
    trace.baseline.steps[0].cond_uncond_norm = float("nan")
    with pytest.raises(MemdemoError, match="non-finite number"):
        trace.to_json()


def test_same_seed_same_result_other_seed_other_result(emojimem_random):
    def run(seed):
        generation = Generation(
            emojimem_random, Request("red apple", seed=seed, steps=4), build_policy("stp", {}, 7.5, None)
        )
        trace = generation.run()
        trace.run.seconds = None
        return trace, generation.images["mitigated"]

    (trace_a, image_a), (trace_b, image_b), (_, image_c) = run(1), run(1), run(2)
    assert trace_a == trace_b and np.array_equal(image_a, image_b)
    assert not np.array_equal(image_a, image_c)


def test_baseline_and_mitigated_start_from_the_same_noise(emojimem_random):
    generation = Generation(emojimem_random, Request("snail", steps=3), build_policy("baseline", {}, 7.5, None))
    generation.run()
    assert np.array_equal(generation.images["baseline"], generation.images["mitigated"])
    assert generation.trace.baseline.steps == generation.trace.mitigated.steps


def test_amg_records_what_fired(emojimem_random, pixel_monitor):
    policy = build_policy("amg", {"schedule": "constant", "threshold": -1.0, "c3": 10.0}, 7.5, pixel_monitor)
    trace = Generation(emojimem_random, Request("backpack", steps=3), policy, pixel_monitor).run()
    for step in trace.mitigated.steps:
        assert step.active and step.threshold == -1.0
        assert {"sigma", "s1", "s2", "g_sim_norm"} <= set(step.scales)
        assert "spe" in step.terms and "sim" in step.terms


def test_scheduler_dpm_solver_runs(emojimem_random):
    trace = Generation(
        emojimem_random, Request("cat", steps=4, scheduler="dpm++"), build_policy("dtp", {}, 7.5, None)
    ).run()
    assert len(trace.mitigated.steps) == 4


def test_long_prompt_is_truncated_with_a_warning_in_the_trace(emojimem_random):
    trace = Generation(
        emojimem_random, Request("very " * 40 + "long", steps=1), build_policy("baseline", {}, 7.5, None)
    ).run()
    assert trace.run.warnings[0].startswith("prompt truncated to the model's 16 tokens: it reads “very very")
    assert "long" not in trace.run.warnings[0]


def test_exploding_guidance_stops_with_the_step_and_the_term(emojimem_random, pixel_monitor):
    # c3 = 1e30 is outside the registry's range, so the engine's own guard is tested on a hand-made policy.
    config = amg_config("main", "l2", terms=("sim",), c3=1e30, schedule="constant", constant_threshold=-1.0)
    policy = AMGPolicy(pixel_monitor, config.resolved(7.5))
    with pytest.raises(GuidanceError, match=r"step 1 \(t = \d+\) from the UNet after G_sim at step 0"):
        Generation(emojimem_random, Request("cat", steps=5), policy, pixel_monitor).run()


def test_bad_choices_list_the_alternatives(pixel_monitor):
    with pytest.raises(GuidanceError, match="choose one of baseline"):
        build_policy("negative-prompt", {}, 7.5, None)
    with pytest.raises(ModelError, match="choose one of emojimem-v2-ddpm: EmojiMem v2"):
        load_backend("dalle")
    with pytest.raises(GuidanceError, match="needs a reference set to measure similarity"):
        build_policy("amg", {}, 7.5, None)
    with pytest.raises(GuidanceError, match="subset of spe, dup, sim"):
        build_policy("amg", {"terms": ("spe", "xyz")}, 7.5, pixel_monitor)
    with pytest.raises(GuidanceError, match=r"c3 \(Eq. 17\) must be between 0 and 100000, got -5"):
        build_policy("amg", {"c3": -5}, 7.5, pixel_monitor)
    with pytest.raises(GuidanceError, match="amg has no parameter c4; its parameters: preset, terms"):
        build_policy("amg", {"c4": 1.0}, 7.5, pixel_monitor)
    with pytest.raises(GuidanceError, match="steps must be between"):
        Request("cat", steps=0)


def test_pixel_index_of_another_image_size_is_refused(tiny_sd):
    _, backend = tiny_sd
    images = np.zeros((3, 16, 16, 3), dtype=np.uint8)
    index = ReferenceIndex.from_images(images, [IndexEntry(i, "x") for i in range(3)], "pixel")
    with pytest.raises(ModelError, match="compares 16-px images but tiny-sd makes 32-px images"):
        SimilarityMonitor(backend, index)


def test_g_sim_through_the_unet_differs_from_the_fixed_noise_gradient(emojimem_random, pixel_monitor):
    always = {"terms": ("sim",), "schedule": "constant", "threshold": -1.0, "c3": 10.0}
    norms = []
    for through_unet in (False, True):
        policy = build_policy("amg", {"sim_through_unet": through_unet, **always}, 7.5, pixel_monitor)
        trace = Generation(emojimem_random, Request("cat", steps=2), policy, pixel_monitor).run()
        norms.append(trace.mitigated.steps[0].scales["g_sim_norm"])
    assert all(np.isfinite(norms)) and norms[0] != norms[1]


def test_official_sd_preset_runs_and_records_the_recomputed_similarity(emojimem_random, pixel_monitor):
    params = {"preset": "official-sd", "schedule": "constant", "threshold": -1.0}
    policy = build_policy("amg", params, 7.5, pixel_monitor)
    trace = Generation(emojimem_random, Request("cat", steps=3), policy, pixel_monitor).run()
    assert trace.run.params["official"] is True
    assert all("spe" in s.terms and "sigma_before_sim" in s.scales for s in trace.mitigated.steps)


def test_previews_reuse_the_decode_that_sigma_made(emojimem_random, pixel_monitor):
    from memdemo.ui.live import LiveRun, decoded

    policy = build_policy("amg", {}, 7.5, pixel_monitor)
    generation = Generation(emojimem_random, Request("snail", steps=3), policy, pixel_monitor, "amg")
    for update in generation:
        expected = emojimem_random.decode(torch.cat([update.x0_baseline, update.x0_mitigated]))
        assert torch.equal(update.decoded, expected)
        previews = LiveRun(generation, verdicts=None)._previews(update)
        assert np.array_equal(previews[0], decoded(emojimem_random, update.x0_baseline))
        assert np.array_equal(previews[1], decoded(emojimem_random, update.x0_mitigated))
    plain = Generation(emojimem_random, Request("snail", steps=2), build_policy("baseline", {}, 7.5, None))
    assert all(update.decoded is None for update in plain)  # no σ_t, no decode to reuse


def test_frame_gap_bounds_streaming_cost_and_the_wait_for_a_cancel():
    from memdemo.ui.live import MAX_FRAME_GAP, frame_gap

    assert frame_gap(0.5, 0.01) == 0.5  # a cheap frame: the interval
    assert frame_gap(0.5, 0.1) == pytest.approx(1.0)  # ten times its cost
    assert frame_gap(0.5, 0.4) == MAX_FRAME_GAP == 2.0  # a dear frame: capped, so Stop is answered soon
    assert frame_gap(3.0, 0.4) == 3.0  # a longer interval asked for is kept
