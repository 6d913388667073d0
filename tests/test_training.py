from dataclasses import replace

import torch
from safetensors.torch import load_file

from memdemo.backends.emojimem import EmojiMemBackend
from memdemo.data.emojimem import EmojiMem
from memdemo.training.trainer import TrainConfig, TrainingData, ema_update, learning_rate, nature_copies, train


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
