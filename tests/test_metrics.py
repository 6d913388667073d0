import numpy as np
import pytest
import torch

from memdemo.reference.metrics import (
    cosine,
    most_duplicated_caption,
    nl2_denominator,
    normalized_l2,
    pixel_similarity,
)


def test_nl2_by_hand():
    # nearest 1, mean of the 3 nearest (1 + 2 + 3) / 3 = 2, α = 0.5 → denominator 1 → nL2 = 1
    assert normalized_l2(np.array([1.0, 2.0, 3.0]), alpha=0.5, k=3) == pytest.approx(1.0)
    # only the first k count: mean(0.5, 1.5) = 1 → denominator 0.5 → nL2 = 0.5 / 0.5
    assert normalized_l2(np.array([0.5, 1.5, 2.5, 3.5]), alpha=0.5, k=2) == pytest.approx(1.0)
    # an exact copy has nL2 0; k nearest all equally far gives the maximum 1/α = 2
    assert normalized_l2(np.array([0.0, 4.0, 4.0]), k=3) == 0
    assert normalized_l2(np.full(50, 3.0)) == pytest.approx(2.0)


def test_nl2_from_points_by_hand():
    query = np.array([0.0, 0.0])
    database = np.array([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]])
    distances = np.sort(np.linalg.norm(database - query, axis=1))  # 1, 5, 10
    assert normalized_l2(distances, k=3) == pytest.approx(1 / (0.5 * 16 / 3))
    assert nl2_denominator(distances, k=3) == pytest.approx(8 / 3)


def test_pixel_similarity_maps_the_paper_thresholds():
    assert pixel_similarity(1.4) == pytest.approx(0.3)
    assert pixel_similarity(1.6) == pytest.approx(0.2)
    assert pixel_similarity(0.0) == 1.0


def test_metrics_accept_torch_tensors_and_differentiate():
    distances = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    nl2 = normalized_l2(distances, k=3)
    nl2.backward()
    assert nl2.item() == pytest.approx(1.0)
    # d/dd0 of d0 / (α·mean) = 1/den − d0·α/(3·den²) with den = 1
    assert distances.grad[0].item() == pytest.approx(1 - 0.5 / 3)


def test_cosine_by_hand():
    assert cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(2**-0.5)
    assert cosine(np.array([[2.0, 0.0]]), np.array([[-3.0, 0.0]]))[0] == pytest.approx(-1.0)


def test_duplicate_caption_rule_weights_copies_and_needs_more_than_min_count():
    captions = ["cat", "dog", "cat", "bird"]
    assert most_duplicated_caption(captions, [1, 32, 1, 1]) == "dog"
    assert most_duplicated_caption(captions, [10, 1, 10, 1]) is None  # 20 is not > 20
    assert most_duplicated_caption(captions, [10, 1, 11, 1]) == "cat"
    assert most_duplicated_caption([], []) is None
