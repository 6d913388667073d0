"""Stable Diffusion for real, offline: a tiny random pipeline saved with `save_pretrained` loads through the path a Hub
id takes; the mitigations run on it; v-prediction, the offline message and the image-folder index."""

import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from huggingface_hub import constants
from PIL import Image
from tiny_sd import save_tiny_pipeline, tiny_components, tiny_dinov2_feature

from memdemo.backends import ModelError, load_backend, sd_availability
from memdemo.backends.stable_diffusion import StableDiffusionBackend
from memdemo.cli import main
from memdemo.evaluation.prompts import load_prompts, prompt_set_name
from memdemo.guidance import SimilarityMonitor, build_policy
from memdemo.guidance.amg import dissimilarity_guidance
from memdemo.guidance.cfg import classifier_free_guidance, predicted_x0
from memdemo.reference import IndexFormatError, ReferenceIndex, get_feature
from memdemo.reference.features import FeatureError
from memdemo.reference.index import IndexEntry
from memdemo.sampling import Generation, Request

CACHED_REPO = "memdemo-test/tiny-sd"


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="module")
def backend(saved_folder):
    return load_backend(str(saved_folder), "cpu")


@pytest.fixture(scope="module")
def cached_repo(saved_folder):
    """The saved pipeline placed in the (temporary, offline) Hugging Face cache as the snapshot of a Hub repository,
    laid out as a download leaves it."""
    repo = Path(constants.HF_HUB_CACHE) / ("models--" + CACHED_REPO.replace("/", "--"))
    commit = "0" * 40
    shutil.copytree(saved_folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    yield CACHED_REPO
    shutil.rmtree(repo)


@pytest.fixture(scope="module")
def monitor(backend):
    """A toy reference set: four random 32-px images under a tiny random DINOv2 feature."""
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    index = ReferenceIndex.from_images(images, [IndexEntry(i, f"photo {i}") for i in range(4)], tiny_dinov2_feature())
    return SimilarityMonitor(backend, index)


def test_a_saved_pipeline_and_a_cached_hub_id_load_through_one_path(backend, cached_repo, saved_folder):
    assert isinstance(backend, StableDiffusionBackend) and backend.dtype == torch.float32
    assert backend.image_size == 32 and backend.sample_shape == (4, 16, 16) and backend.prediction == "epsilon"
    from_hub = load_backend(cached_repo, "cpu")  # HF_HUB_OFFLINE=1: the snapshot in the cache, no network
    assert from_hub.name == CACHED_REPO
    x, embeddings = torch.randn(1, 4, 16, 16), backend.encode_text(["a cat"]).embeddings
    torch.testing.assert_close(from_hub.predict_noise(x, torch.tensor(500), embeddings), backend.predict_noise(
        x, torch.tensor(500), embeddings
    ))  # fmt: skip
    availability = sd_availability(cached_repo)
    assert availability.cached and availability.offered
    assert sd_availability(str(saved_folder)).cached


@pytest.mark.parametrize("method", ["baseline", "amg", "dtp"])
def test_mitigations_run_on_the_loaded_pipeline(backend, monitor, method):
    params = {"schedule": "constant", "threshold": -1.0} if method == "amg" else {}
    policy = build_policy(method, params, 7.5, monitor)
    generation = Generation(backend, Request("a cat", seed=3, steps=3), policy, monitor, method)
    trace = generation.run()
    assert len(trace.mitigated.steps) == 3 and trace.run.feature == "dinov2"
    assert generation.images["mitigated"].shape == (32, 32, 3)
    assert all(
        step.similarity is not None and step.nearest_caption.startswith("photo") for step in trace.baseline.steps
    )
    if method == "amg":  # the gate is forced open: G_sim acted through the VAE decoder and DINOv2
        assert all(step.active and step.scales["g_sim_norm"] > 0 for step in trace.mitigated.steps)
        assert not np.array_equal(generation.images["baseline"], generation.images["mitigated"])


def test_g_sim_lowers_the_similarity_to_the_reference(backend, monitor):
    torch.manual_seed(1)
    x_t, t = torch.randn(1, 4, 16, 16), 601
    alpha_bar = float(backend.alphas_cumprod[t])
    embeddings = backend.encode_text(["", "a cat"]).embeddings
    eps_u, eps_c = backend.predict_noise(torch.cat([x_t, x_t]), torch.tensor(t), embeddings).chunk(2)
    eps = classifier_free_guidance(eps_u, eps_c, 7.5)
    x0 = predicted_x0(x_t, eps, alpha_bar)
    match = monitor.match(x0)[0]
    before = float(monitor.similarity(x0, match))
    gradient = monitor.gradient(x_t, eps, alpha_bar, match)
    guided = eps + dissimilarity_guidance(gradient, alpha_bar, c3=100.0)
    after = float(monitor.similarity(predicted_x0(x_t, guided, alpha_bar), match))
    assert before == pytest.approx(match.similarity, abs=1e-4)
    assert after < before


def test_v_prediction_is_converted_to_epsilon():
    parts = tiny_components("v_prediction")
    config = parts["scheduler"].config
    backend = StableDiffusionBackend(
        "tiny-v", parts["unet"], parts["vae"], parts["text_encoder"], parts["tokenizer"], config
    )
    torch.manual_seed(2)
    x, t = torch.randn(1, 4, 16, 16), 500
    embeddings = backend.encode_text(["a dog"]).embeddings
    v = parts["unet"](x, t, encoder_hidden_states=embeddings).sample
    eps = backend.predict_noise(x, torch.tensor(t), embeddings)
    a = float(DDIMScheduler.from_config(config).alphas_cumprod[t])  # ᾱ_500 of the scaled-linear schedule
    by_hand = math.sqrt(a) * float(v[0, 0, 0, 0]) + math.sqrt(1 - a) * float(x[0, 0, 0, 0])
    assert float(eps[0, 0, 0, 0]) == pytest.approx(by_hand, rel=1e-5, abs=1e-6)
    # The engine's scheduler reads the converted output as ε: one DDIM step equals diffusers' v-prediction step.
    ours = backend.make_scheduler("ddim")
    reference = DDIMScheduler.from_config(config, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    assert ours.config.prediction_type == "epsilon" and reference.config.prediction_type == "v_prediction"
    for scheduler in (ours, reference):
        scheduler.set_timesteps(10)
    step, x = ours.timesteps[3], torch.randn(1, 4, 16, 16)
    v = parts["unet"](x, step, encoder_hidden_states=embeddings).sample.detach()
    expected = reference.step(v, step, x).prev_sample
    torch.testing.assert_close(ours.step(backend.predict_noise(x, step, embeddings), step, x).prev_sample, expected)


def test_a_prediction_type_other_than_epsilon_or_v_is_refused():
    parts = tiny_components()
    config = {**parts["scheduler"].config, "prediction_type": "sample"}
    with pytest.raises(ModelError, match="'sample'; memdemo supports epsilon and v_prediction models only"):
        StableDiffusionBackend("tiny", parts["unet"], parts["vae"], parts["text_encoder"], parts["tokenizer"], config)


@pytest.mark.parametrize(
    "model, size",
    [("sd-v1-4", "about 4.3 GB"), ("someone/not-cached-sd", "several GB")],
)
def test_offline_without_weights_fails_fast_naming_the_fetch_command(model, size, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = "CompVis/stable-diffusion-v1-4" if model == "sd-v1-4" else model
    started = time.perf_counter()
    with pytest.raises(ModelError) as raised:
        load_backend(model, "cpu")
    assert time.perf_counter() - started < 5
    message = str(raised.value)
    assert message.startswith(f"cannot load Stable Diffusion {repo!r}") and "HF_HUB_OFFLINE is set" in message
    assert f"hf download {repo} --include" in message and "snapshot_download" in message and size in message
    availability = sd_availability(model)
    assert not availability.cached and availability.offered == torch.cuda.is_available()


def test_a_folder_without_safetensors_weights_is_a_clear_message(saved_folder, tmp_path):
    shutil.copytree(saved_folder, tmp_path / "sd", ignore=shutil.ignore_patterns("diffusion_pytorch_model.*"))
    with pytest.raises(ModelError, match=r"lacks unet/diffusion_pytorch_model.safetensors, vae/"):
        load_backend(str(tmp_path / "sd"), "cpu")


def test_a_hub_encoder_that_is_not_downloaded_names_the_fetch_command(monkeypatch):
    feature = get_feature("dinov2")
    assert feature.metric == "cosine"
    with pytest.raises(FeatureError, match=r'hf download facebook/dinov2-small --include "\*.safetensors"'):
        feature(torch.rand(1, 3, 32, 32))


def test_an_image_folder_is_indexed_with_captions_and_non_images_skipped(tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    for name, colour in zip(["a.png", "b.jpg", "sub/c.png"], colours, strict=True):
        Image.new("RGB", (40, 24), colour).save(folder / name)
    Image.new("RGB", (40, 24), colours[0]).save(folder / "z-copy.png")
    (folder / "b.txt").write_text("a green square\n")
    (folder / "captions.jsonl").write_text('{"file_name": "sub/c.png", "caption": "a blue square"}\n')
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4 not an image")
    out = tmp_path / "index"
    assert (
        main(["index", "build", "--images", str(folder), "--features", "pixel", "--size", "8", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "skipped 1 files that are not images: notes.pdf" in printed and "1 duplicate files counted" in printed
    index = ReferenceIndex.load(out, feature="pixel")
    assert index.image_size == 8 and len(index) == 3
    assert [(e.label, e.caption, e.copies) for e in index.entries] == [
        ("a.png", "a", 2),
        ("b.jpg", "a green square", 1),
        ("sub/c.png", "a blue square", 1),
    ]


def test_an_empty_image_folder_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no pictures here")
    argv = ["index", "build", "--images", str(tmp_path / "empty"), "--features", "dinov2", "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    assert "holds no images Pillow can read (PNG, JPEG, WebP, ...); 1 other files were skipped" in (
        capsys.readouterr().err
    )


def test_an_index_of_another_feature_is_refused(monitor, tmp_path):
    monitor.index.save(tmp_path / "dino")
    with pytest.raises(IndexFormatError, match="built with feature 'dinov2', but 'clip' is needed"):
        ReferenceIndex.load(tmp_path / "dino", feature="clip")


def test_the_published_sd_prompt_sets_load_without_own_images():
    memorized, unmemorized = load_prompts("sd-memorized"), load_prompts("sd-unmemorized", limit=2)
    assert len(memorized) == 500 and all(p.own_id is None for p in memorized)
    assert memorized[0].text == "The No Limits Business Woman Podcast"
    assert memorized[3].text == 'Watch: Passion Pit\'s New Video, "Lifted Up (1985)"'  # CSV-unescaped (SOURCE.md)
    assert [p.text for p in unmemorized] == [
        "Photo pour Japanese pagoda and old house in Kyoto at twilight - image libre de droit",
        "Soaring by Peter Eades",
    ]
    assert prompt_set_name("sd-memorized") == "sd-memorized"
