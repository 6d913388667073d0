from pathlib import Path

import numpy as np
import pytest
import torch

from memdemo.backends.emojimem import EmojiMemBackend
from memdemo.evaluation.batch_sampling import sample_cfg
from memdemo.evaluation.quality import mean_abs_error, median3x3, nearest_pixel, speckle
from memdemo.guidance import build_policy
from memdemo.sampling import Generation, Request

ASSETS = Path(__file__).resolve().parents[1] / "assets"
WEIGHT_LIMIT = 16 * 2**20


def test_speckle_of_one_isolated_pixel_by_hand():
    image = np.zeros((1, 5, 5, 3), dtype=np.uint8)
    image[0, 2, 2] = 255  # one white pixel: the median removes it, so |x − median| is 1 there and 0 elsewhere
    assert speckle(image)[0] == pytest.approx(1 / 25)
    flat = np.full((1, 5, 5, 3), 200, dtype=np.uint8)
    assert speckle(flat)[0] == 0


def test_median_filter_keeps_edges_and_replicates_borders():
    ramp = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    filtered = median3x3(ramp)
    torch.testing.assert_close(filtered[..., 1:-1, 1:-1], ramp[..., 1:-1, 1:-1])  # a ramp is its own 3×3 median
    assert filtered[0, 0, 0, 0] == 1  # corner: replicated 0, 0, 0, 0, 1, 1, 4, 4, 5 → 1


def test_nearest_pixel_and_error_by_hand():
    training = np.stack([np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)])
    query = np.full((1, 2, 2, 3), 51, dtype=np.uint8)  # 0.2: nearer to black
    nearest, error = nearest_pixel(query, training)
    assert nearest.tolist() == [0] and error[0] == pytest.approx(0.2)
    assert mean_abs_error(query, training[1:])[0] == pytest.approx(0.8)


def test_batched_sampling_equals_the_generation_baseline():
    backend = EmojiMemBackend.random()
    prompts, seeds = ["grinning face", "red heart"], [3, 4]
    batched = sample_cfg(backend, prompts, seeds, cfg=5.0, steps=4, batch_size=1)
    together = sample_cfg(backend, prompts, seeds, cfg=5.0, steps=4, batch_size=2)
    for row, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
        policy = build_policy("baseline", {}, 5.0, None)
        generation = Generation(backend, Request(prompt, seed, steps=4, cfg=5.0), policy)
        generation.run()
        assert np.abs(generation.images["baseline"].astype(int) - batched[row].astype(int)).max() <= 1
    assert np.abs(batched.astype(int) - together.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "folder", sorted(p.parent for p in ASSETS.glob("*/config.json") if (p.parent / "unet.safetensors").exists())
)
def test_shipped_models_stay_under_16_mb(folder):
    size = sum(path.stat().st_size for path in folder.rglob("*.safetensors") if "checkpoint" not in path.parts)
    assert size <= WEIGHT_LIMIT, f"{folder.name}: {size / 2**20:.1f} MB of weights (limit 16 MB)"
