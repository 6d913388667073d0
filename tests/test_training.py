from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from memdemo.backends.emojimem import EmojiMemBackend
from memdemo.data.emojimem import EmojiMem
from memdemo.errors import MemdemoError
from memdemo.training.autoencoder import AutoencoderTrainConfig, train_autoencoder
from memdemo.training.loop import ema_update, learning_rate
from memdemo.training.trainer import TrainConfig, TrainingData, nature_copies, resolve_t_nature, train


def _small(emojimem, count=24):
    records = [replace(r, id=i) for i, r in enumerate(emojimem.records[:count])]
    return EmojiMem(emojimem.images[:count], records)


def test_training_entries_repeat_duplicates_and_leave_out_the_holdout(emojimem):
    class Encoder:
        def __call__(self, prompts):
            return type("Encoding", (), {"embeddings": torch.zeros(len(prompts), 16, 384)})()

    data = TrainingData.from_dataset(emojimem, Encoder())
    assert len(data.images) == len(emojimem.ids("train"))
    assert len(data.entries) == sum(r.copies for r in emojimem.records)
    assert data.images.min() >= -1 and data.images.max() <= 1


def test_nature_copies_are_fixed_per_unique_image():
    images = torch.zeros(3, 3, 4, 4)
    alphas = torch.linspace(0.999, 0.01, 1000)
    assert torch.equal(nature_copies(images, 300, alphas, 0), nature_copies(images, 300, alphas, 0))
    assert not torch.equal(nature_copies(images, 300, alphas, 0), nature_copies(images, 300, alphas, 1))


def test_ema_warm_up_and_learning_rate_schedule():
    model, ema = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    model.weight.data.fill_(1.0)
    ema.weight.data.fill_(0.0)
    ema_update(ema, model, step=0, decay=0.999)  # rate 0.1 → ema moves 90% of the way
    assert abs(ema.weight.item() - 0.9) < 1e-6
    config = TrainConfig(lr=1.0, warmup_steps=10, steps=110)
    assert learning_rate(config, 0) == 0.1 and learning_rate(config, 9) == 1.0
    assert abs(learning_rate(config, 110) - 0.1) < 1e-12


@pytest.mark.slow
def test_resumed_training_equals_uninterrupted_training(tmp_path, emojimem):
    small = _small(emojimem)
    config = TrainConfig(objective="ambient", t_nature=200, steps=4, batch_size=4, checkpoint_every=2, log_every=1)
    train(config, small, tmp_path / "straight", progress=False)
    train(replace(config, steps=2), small, tmp_path / "resumed", progress=False)
    card = train(config, small, tmp_path / "resumed", progress=False)
    straight = load_file(str(tmp_path / "straight" / "unet.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "unet.safetensors"))
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    assert card["objective"] == "ambient" and card["t_nature"] == 200 and card["sigma_ve_nature"] > 0
    assert EmojiMemBackend.load(tmp_path / "resumed").unet.config.sample_size == 32
    log = (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 4


def test_ambient_t_nature_zero_is_kept_and_out_of_range_is_refused():
    assert resolve_t_nature(TrainConfig(objective="ambient", t_nature=0)) == 0
    assert resolve_t_nature(TrainConfig(objective="ambient")) == 300
    assert resolve_t_nature(TrainConfig(objective="ddpm", t_nature=0)) is None
    with pytest.raises(MemdemoError, match="between 0 and 999"):
        resolve_t_nature(TrainConfig(objective="ambient", t_nature=1000))


@pytest.mark.parametrize(
    "field, value, message",
    [("steps", 0, "--steps"), ("batch_size", 0, "--batch-size"), ("caption_dropout", 1.0, "--caption-dropout")],
)
def test_settings_that_cannot_train_are_refused(tmp_path, emojimem, field, value, message):
    with pytest.raises(MemdemoError, match=message):
        train(replace(TrainConfig(), **{field: value}), _small(emojimem), tmp_path, progress=False)


@pytest.mark.slow
def test_resuming_with_another_recipe_names_the_difference(tmp_path, emojimem):
    small = _small(emojimem)
    config = TrainConfig(steps=2, batch_size=2, checkpoint_every=1, log_every=1)
    train(config, small, tmp_path, progress=False)
    with pytest.raises(MemdemoError, match="prediction: checkpoint 'epsilon', asked 'v_prediction'"):
        train(replace(config, steps=3, prediction="v_prediction"), small, tmp_path, progress=False)


@pytest.mark.slow
def test_a_truncated_checkpoint_stops_with_a_clear_error(tmp_path, emojimem):
    small = _small(emojimem)
    config = TrainConfig(steps=1, batch_size=2, log_every=1)
    train(config, small, tmp_path, progress=False)
    weights = tmp_path / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(MemdemoError, match=r"truncated, corrupt or of another architecture.*delete the folder"):
        train(replace(config, steps=2), small, tmp_path, progress=False)


@pytest.mark.slow
def test_a_run_stopped_at_a_step_resumes_to_the_same_model(tmp_path, emojimem):
    small = _small(emojimem)
    # Past a one-step warm-up the learning rate depends on the schedule's length, which stopping must not change.
    config = TrainConfig(steps=4, batch_size=2, warmup_steps=1, checkpoint_every=100, log_every=1)
    train(config, small, tmp_path / "straight", progress=False)
    card = train(replace(config, stop_at=2), small, tmp_path / "stopped", progress=False)
    assert card["steps_done"] == 2
    card = train(config, small, tmp_path / "stopped", progress=False)
    assert card["steps_done"] == 4 and [r["step"] for r in card["resumes"]] == [2]
    straight = load_file(str(tmp_path / "straight" / "unet.safetensors"))
    resumed = load_file(str(tmp_path / "stopped" / "unet.safetensors"))
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    with pytest.raises(MemdemoError, match="--stop-at must be between 1 and --steps"):
        train(replace(config, stop_at=5), small, tmp_path / "beyond", progress=False)


@pytest.mark.slow
def test_cpu_budget_stops_early_and_records_cpu_time_and_resumes(tmp_path, emojimem):
    small = _small(emojimem)
    config = TrainConfig(steps=50, batch_size=2, log_every=1, checkpoint_every=100, max_cpu_minutes=1e-6)
    card = train(config, small, tmp_path, progress=False)
    assert card["steps_done"] == 1 and card["cpu_seconds"] > 0 and card["resumes"] == []
    card = train(replace(config, steps=2, max_cpu_minutes=None), small, tmp_path, progress=False)
    assert card["steps_done"] == 2 and [r["step"] for r in card["resumes"]] == [1]
    card = train(replace(config, steps=3, max_cpu_minutes=None, caption_dropout=0.2), small, tmp_path, progress=False)
    assert card["hyperparameters"]["caption_dropout"] == 0.2
    changed = ["caption_dropout: checkpoint 0.1, asked 0.2", "steps: checkpoint 2, asked 3"]
    assert card["resumes"][-1]["changed"] == changed


@pytest.mark.slow
def test_latent_model_trains_on_autoencoder_latents_and_loads_as_a_backend(tmp_path, emojimem):
    small = _small(emojimem)
    vae = tmp_path / "vae"
    ae_card = train_autoencoder(AutoencoderTrainConfig(steps=2, batch_size=2, log_every=1), small, vae, progress=False)
    assert ae_card["scaling_factor"] > 0 and 0 <= ae_card["mae_train_median"] <= 1
    config = TrainConfig(steps=1, batch_size=2, prediction="v_prediction", autoencoder=str(vae), log_every=1)
    card = train(config, small, tmp_path / "model", progress=False)
    assert card["space"] == "latent" and card["prediction"] == "v_prediction"
    backend = EmojiMemBackend.load(tmp_path / "model")
    assert backend.sample_shape == (4, 16, 16) and backend.prediction == "v_prediction"
    x = torch.randn(2, *backend.sample_shape)
    eps = backend.predict_noise(x, torch.tensor(500), backend.encode_text(["a", ""]).embeddings)
    v = backend.unet(x, torch.tensor(500), encoder_hidden_states=backend.encode_text(["a", ""]).embeddings).sample
    alpha_bar = backend.alphas_cumprod[500]
    torch.testing.assert_close(eps, alpha_bar.sqrt() * v + (1 - alpha_bar).sqrt() * x)
    pixels = backend.decode(x)
    assert pixels.shape == (2, 3, 32, 32) and pixels.min() >= 0 and pixels.max() <= 1


@pytest.mark.slow
def test_a_latent_run_resumes_from_a_moved_autoencoder_but_not_from_another(tmp_path, emojimem):
    small = _small(emojimem)
    config = AutoencoderTrainConfig(steps=1, batch_size=2, log_every=1)
    train_autoencoder(config, small, tmp_path / "vae", progress=False)
    train_autoencoder(replace(config, seed=1), small, tmp_path / "other", progress=False)
    run = TrainConfig(steps=1, batch_size=2, autoencoder=str(tmp_path / "vae"), log_every=1)
    train(run, small, tmp_path / "model", progress=False)
    (tmp_path / "vae").rename(tmp_path / "moved")
    card = train(replace(run, steps=2, autoencoder=str(tmp_path / "moved")), small, tmp_path / "model", progress=False)
    assert card["steps_done"] == 2
    with pytest.raises(MemdemoError, match="autoencoder: checkpoint 'sha256:"):
        train(replace(run, steps=3, autoencoder=str(tmp_path / "other")), small, tmp_path / "model", progress=False)
