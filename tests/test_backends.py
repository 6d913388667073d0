from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from memdemo.backends import ModelError, load_backend
from memdemo.backends.emojimem import CONFIG_FILE, UNET_CONFIG, WEIGHTS_FILE, EmojiMemBackend, save_emojimem
from memdemo.backends.text_encoder import minilm_path, shared_text_encoder


@pytest.fixture(scope="module")
def saved_random(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emojimem-ddpm")
    torch.manual_seed(0)
    save_emojimem(folder, UNet2DConditionModel(**UNET_CONFIG), {"objective": "ddpm"})
    return folder


def test_save_load_round_trip_keeps_the_weights(saved_random):
    backend = EmojiMemBackend.load(saved_random)
    stored = load_file(str(saved_random / WEIGHTS_FILE))
    for name, tensor in backend.unet.state_dict().items():
        assert torch.equal(tensor, stored[name])
    assert backend.alphas_cumprod.shape == (1000,) and backend.sample_shape == (3, 32, 32)


def test_text_encoding_is_minilm_token_states():
    backend = load_backend("emojimem-random", "cpu")
    encoding = backend.encode_text(["grinning face", ""])
    assert encoding.embeddings.shape == (2, 16, 384) and encoding.truncated == [False, False]
    x = torch.zeros(2, 3, 32, 32)
    assert backend.predict_noise(x, torch.tensor(500), encoding.embeddings).shape == (2, 3, 32, 32)


def mapped_ranges(path: str) -> list[tuple[int, int]]:
    """The address ranges of this process's memory maps of the file at `path` (Linux)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == path:
            start, end = (int(address, 16) for address in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def test_models_share_one_text_encoder_whose_weights_are_not_mapped_from_the_file():
    first, second = EmojiMemBackend.random(seed=0), EmojiMemBackend.random(seed=1)
    assert first.text_encoder is second.text_encoder is shared_text_encoder(torch.device("cpu"))
    weights = str(Path(minilm_path()) / "model.safetensors")
    mapped = AutoModel.from_pretrained(minilm_path())  # as transformers loads it, for contrast
    ranges = mapped_ranges(weights)
    assert ranges, "transformers no longer maps the weights: in_memory() may be needless"
    assert any(start <= p.data_ptr() < end for p in mapped.parameters() for start, end in ranges)
    encoder = first.text_encoder.model
    assert all(not start <= p.data_ptr() < end for p in encoder.parameters() for start, end in ranges)
    assert all(torch.equal(a, b) for a, b in zip(encoder.parameters(), mapped.parameters(), strict=True))


def test_the_shared_text_encoder_gives_each_thread_its_own_prompts():
    encoder = shared_text_encoder(torch.device("cpu"))
    prompts = [["grinning face"], ["keycap 8", "a very long prompt about a red apple on a green table in the sun"]]
    serial = [encoder(batch) for batch in prompts]
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(encoder, prompts * 16))
    for expected, got in zip(serial * 16, threaded, strict=True):
        assert torch.equal(expected.embeddings, got.embeddings)
        assert expected.truncated == got.truncated and expected.kept == got.kept


def test_a_trained_folder_loads_by_its_path(saved_random):
    backend = load_backend(str(saved_random), "cpu")
    assert isinstance(backend, EmojiMemBackend)
    assert backend.name == saved_random.name


def test_missing_weights_name_the_training_command(tmp_path):
    with pytest.raises(ModelError, match="python -m memdemo train --objective ambient"):
        EmojiMemBackend.load(tmp_path / "emojimem-ambient")


def test_weights_that_do_not_match_the_config_are_refused(saved_random, tmp_path):
    state = load_file(str(saved_random / WEIGHTS_FILE))
    (tmp_path / CONFIG_FILE).write_text((saved_random / CONFIG_FILE).read_text())
    first = next(iter(state))
    save_file({**state, first: torch.zeros(1)}, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(ModelError, match=r"does not match the architecture.*1 mis-shaped"):
        EmojiMemBackend.load(tmp_path)


def test_truncated_weights_are_refused(saved_random, tmp_path):
    (tmp_path / CONFIG_FILE).write_text((saved_random / CONFIG_FILE).read_text())
    payload = (saved_random / WEIGHTS_FILE).read_bytes()
    (tmp_path / WEIGHTS_FILE).write_bytes(payload[: len(payload) // 3])
    with pytest.raises(ModelError, match="truncated or corrupted"):
        EmojiMemBackend.load(tmp_path)


def test_stable_diffusion_without_weights_or_network_is_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="cannot load Stable Diffusion"):
        load_backend(str(tmp_path), "cpu")
