import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file, save_file

from memdemo.backends import ModelError, load_backend
from memdemo.backends.emojimem import CONFIG_FILE, UNET_CONFIG, WEIGHTS_FILE, EmojiMemBackend, save_emojimem


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
