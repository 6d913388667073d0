"""Reference images uploaded in the demo, offline with a tiny random SD and DINOv2: each refusal's message, the
session index AMG follows through the VAE, per-session isolation through a client, and SD's own examples."""

from __future__ import annotations

import json
import logging
import threading
import zipfile

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image
from test_app import free_port
from tiny_sd import save_tiny_pipeline, tiny_dinov2_feature

from memdemo.backends import load_backend
from memdemo.evaluation.prompts import load_prompts
from memdemo.guidance import build_policy
from memdemo.reference import features
from memdemo.sampling import Generation, Request
from memdemo.ui import reference_upload
from memdemo.ui.layout import build_demo
from memdemo.ui.models import LoadedModel, ModelRegistry, is_stable_diffusion, model_note
from memdemo.ui.reference_upload import MAX_FILES, UploadError, build_reference
from memdemo.ui.sd_examples import sd_card, sd_memorized_prompts
from memdemo.ui.settings import api_arguments

# AMG with only G_sim and its gate forced open, strong enough to move a tiny model's image in four steps.
FORCED_SIM = {"schedule": "constant", "threshold": -1.0, "terms": ["sim"], "c3": 1000.0}
PROMPT, SEED, STEPS = "a cat", 3, 4


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """The tiny random SD, loaded from the folder `save_pretrained` wrote (its name is that folder)."""
    return load_backend(str(save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))), "cpu")


@pytest.fixture(scope="module")
def baseline_image(backend) -> np.ndarray:
    """What the tiny SD makes for PROMPT and SEED with plain CFG."""
    generation = Generation(backend, Request(PROMPT, SEED, STEPS), build_policy("baseline", {}, 7.5, None), None)
    generation.run()
    return generation.images["baseline"]


@pytest.fixture(scope="module")
def uploads(tmp_path_factory, baseline_image) -> list[str]:
    """Two noise images and the baseline's own image twice (a copy of a 'training image', uploaded as a duplicate)."""
    folder = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(0)
    for name in ("noise-a.png", "noise-b.jpg"):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / name)
    for name in ("training.png", "training-copy.png"):
        Image.fromarray(baseline_image).save(folder / name)
    return [str(path) for path in sorted(folder.iterdir())]


def small_png(path) -> str:
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    return str(path)


def test_more_files_than_the_limit_are_refused_naming_the_limit_and_the_cli(tmp_path):
    paths = [small_png(tmp_path / f"{i}.png") for i in range(MAX_FILES + 1)]
    with pytest.raises(UploadError) as refused:
        build_reference(paths, tiny_dinov2_feature())
    message = str(refused.value)
    assert message.startswith(f"{MAX_FILES + 1} files uploaded; a session's reference set holds at most {MAX_FILES}")
    assert "index build --images FOLDER --features dinov2" in message


def test_an_empty_upload_is_refused(tmp_path):
    (tmp_path / "blank.png").write_bytes(b"")
    with pytest.raises(UploadError, match=r"^blank.png is empty \(0 bytes\); remove it and upload the image again$"):
        build_reference([small_png(tmp_path / "ok.png"), str(tmp_path / "blank.png")], tiny_dinov2_feature())
    with pytest.raises(UploadError, match="no reference images were uploaded; upload one or more PNG"):
        build_reference([], tiny_dinov2_feature())


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    big = tmp_path / "huge.png"
    with big.open("wb") as file:
        file.truncate(reference_upload.MAX_FILE_BYTES + 1)
    with pytest.raises(UploadError, match=r"^huge.png is 10.0 MB; each reference image is limited to 10 MB, so resize"):
        build_reference([str(big)], tiny_dinov2_feature())


def test_a_file_that_is_not_an_image_is_refused(tmp_path):
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4 not an image")
    message = "^notes.pdf is not an image Pillow can read; use a PNG, JPEG or WebP image file instead$"
    with pytest.raises(UploadError, match=message):
        build_reference([small_png(tmp_path / "ok.png"), str(tmp_path / "notes.pdf")], tiny_dinov2_feature())


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path):
    Image.new("1", (4001, 4000)).save(tmp_path / "poster.png")  # 16,004,000 pixels, a few kB as a bilevel PNG
    with pytest.raises(UploadError, match=r"^poster.png is 4001×4000 pixels; images are limited to 16,000,000 pixels"):
        build_reference([str(tmp_path / "poster.png")], tiny_dinov2_feature())


def test_uploaded_images_become_a_session_index_that_amg_follows_through_the_vae(backend, uploads):
    reference = build_reference(uploads, tiny_dinov2_feature())
    assert [(e.caption, e.copies) for e in reference.index.entries] == [
        ("noise-a", 1), ("noise-b", 1), ("training-copy", 2)
    ]  # fmt: skip
    assert reference.duplicates == 1 and reference.images.shape == (3, 224, 224, 3)
    assert "3 images (1 duplicate files counted as copies), dinov2 features" in reference.describe()
    without = LoadedModel(backend, {}, threading.BoundedSemaphore(1))
    monitor, verdicts = without.judge("object")
    assert monitor is None and verdicts.judge is None
    monitor, verdicts = without.judge("object", reference)
    policy = build_policy("amg", FORCED_SIM, 7.5, monitor)
    generation = Generation(backend, Request(PROMPT, SEED, STEPS), policy, monitor, "amg")
    trace = generation.run()
    base, mitigated = trace.baseline.steps, trace.mitigated.steps
    assert trace.run.feature == "dinov2" and all(s.similarity is not None for s in base + mitigated)
    assert all(step.active and step.scales["g_sim_norm"] > 0 for step in mitigated)
    judged = verdicts.judgements(generation.images, PROMPT)
    # The baseline is the uploaded 'training' image: a copy of it; G_sim moved the mitigated image away from it.
    assert judged["baseline"].copy and judged["baseline"].nearest_caption == "training-copy"
    assert judged["baseline"].similarity > 0.99 > judged["mitigated"].similarity + 0.05
    assert judged["baseline"].comparison().startswith("dinov2 cosine 1.00 > τ = 0.40 (the official AMG λ at t = 0")
    nearest = verdicts.judge.nearest_image(judged["baseline"])
    assert np.array_equal(nearest, reference.images[2]) and verdicts.own_image(PROMPT) is None


def test_the_model_note_says_whether_amg_can_run():
    assert "AMG is unavailable here" in model_note("someone/sd") and "Upload reference images below" in model_note(
        "someone/sd"
    )  # fmt: skip
    uploaded = model_note("someone/sd", uploaded=True)
    assert "AMG and the verdicts use the reference images you uploaded" in uploaded and "unavailable" not in uploaded


def test_sd_examples_come_from_the_shipped_nemo_lists_with_their_published_labels():
    card = sd_card()
    memorized = {p.text for p in load_prompts("sd-memorized")}
    unmemorized = [p.text for p in load_prompts("sd-unmemorized", limit=3)]
    groups = {group: [e for e in card["examples"] if e["group"] == group] for group in card["groups"]}
    assert {group: len(rows) for group, rows in groups.items()} == {"VM": 4, "TM": 2, "unmemorized": 3}
    assert all(e["prompt"] in memorized for e in groups["VM"] + groups["TM"])
    assert [e["prompt"] for e in groups["unmemorized"]] == unmemorized
    scores = [float(e["expect"].split("mean SSCD ")[1][:4]) for e in groups["VM"]]
    assert scores == sorted(scores, reverse=True) and scores[-1] > max(
        float(e["expect"].split("mean SSCD ")[1][:4]) for e in groups["TM"]
    )
    assert all(e["expect"].startswith("NeMo list: verbatim (VM), their mean SSCD") for e in groups["VM"])
    assert all("not measured here" in e["expect"] and "Measured" not in e["expect"] for e in card["examples"])
    assert len(sd_memorized_prompts()) == len(memorized)


def demo_function(demo, name: str):
    return next(fn.fn for fn in demo.fns.values() if fn.name == name)


def test_the_examples_and_the_upload_switch_with_the_model(tmp_path):
    demo = build_demo(ModelRegistry("cpu"), "emojimem-ddpm", interval=0.0)
    panels = demo_function(demo, "show_model_panels")
    emojimem_box, sd_box, search, upload = panels("sd-v1-4")
    assert (emojimem_box["visible"], sd_box["visible"], upload["visible"]) == (False, True, True)
    assert search["choices"] == sd_memorized_prompts() and search["value"] is None
    emojimem_box, sd_box, search, upload = panels("emojimem-ddpm")
    assert (emojimem_box["visible"], sd_box["visible"], upload["visible"]) == (True, False, False)
    assert (
        "warning" in search["choices"] and is_stable_diffusion("sd-v1-4") and not is_stable_diffusion("emojimem-ddpm")
    )
    datasets = [block for block in demo.blocks.values() if type(block).__name__ == "Dataset"]
    shown = {sample[0] for dataset in datasets for sample in dataset.samples}
    assert {e["prompt"] for e in sd_card()["examples"]} <= shown
    methods = demo_function(demo, "methods_for")
    assert "amg" not in [name for _, name in methods("sd-v1-4", None)[0]["choices"]]
    reference = build_reference([small_png(tmp_path / "one.png")], tiny_dinov2_feature())
    update = methods("sd-v1-4", reference)[0]
    assert update["value"] == "amg" and "amg" in [name for _, name in update["choices"]]


@pytest.fixture(scope="module")
def served(backend):
    """The demo serving the tiny SD, with the dinov2 feature replaced by the tiny random one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(features._REGISTRY, "dinov2", tiny_dinov2_feature)
        demo = build_demo(ModelRegistry("cpu"), backend.name, interval=0.0)
        demo.queue(default_concurrency_limit=2)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        yield f"http://127.0.0.1:{port}/", backend.name
        demo.close()


def generate(client: Client, model: str, method: str = "amg") -> dict:
    values = {"prompt": PROMPT, "seed": SEED, "steps": STEPS, "method": method}
    values |= {f"amg.{key}": value for key, value in FORCED_SIM.items()} if method == "amg" else {}
    result = client.predict(*api_arguments(model, values), api_name="/generate")
    with zipfile.ZipFile(result[-1]) as bundle:
        return {"verdict": result[2], "trace": json.loads(bundle.read("trace.json"))}


def test_an_upload_enables_amg_for_that_session_only(served, uploads):
    url, model = served
    owner, stranger = Client(url, verbose=False), Client(url, verbose=False)
    status, method, note = owner.predict([handle_file(path) for path in uploads], model, api_name="/reference")
    assert status.startswith("Reference set for this session: 3 images") and method["value"] == "amg"
    assert "use the reference images you uploaded" in note["value"]
    run = generate(owner, model)
    steps = run["trace"]["trajectories"]["mitigated"]["steps"]
    assert run["trace"]["run"]["feature"] == "dinov2" and all(s["similarity"] is not None for s in steps)
    assert run["verdict"].startswith("**COPY** — dinov2 cosine") and "“training-copy”" in run["verdict"]
    with pytest.raises(Exception, match="Anti-Memorization Guidance needs a reference set"):
        generate(stranger, model)
    assert generate(stranger, model, "dtp")["trace"]["run"]["feature"] is None


def test_a_refused_upload_is_a_message_and_one_log_line_and_the_app_keeps_serving(served, tmp_path, caplog, capfd):
    url, model = served
    client = Client(url, verbose=False)
    (tmp_path / "notes.txt").write_text("not a picture")
    with caplog.at_level(logging.WARNING), pytest.raises(Exception, match=r"notes\.txt is not an image"):
        client.predict([handle_file(str(tmp_path / "notes.txt"))], model, api_name="/reference")
    refused = [r.getMessage() for r in caplog.records if r.name == reference_upload.__name__]
    assert refused == ["reference upload refused: notes.txt is not an image Pillow can read; use a PNG, JPEG or WebP "
                       "image file instead"]  # fmt: skip
    assert "Traceback" not in capfd.readouterr().err
    status, method, _ = client.predict([handle_file(small_png(tmp_path / "ok.png"))], model, api_name="/reference")
    assert status.startswith("Reference set for this session: 1 image,") and method["value"] == "amg"
