import json

import numpy as np
import pytest
from conftest import SHIPPED_PIXEL_INDEX

from memdemo.reference import IndexFormatError, ReferenceIndex, get_feature
from memdemo.reference.features import _REGISTRY, embed_images
from memdemo.reference.index import FAISS_FILE, HEADER_FILE, METADATA_FILE, IndexEntry
from memdemo.reference.metrics import normalized_l2


class MeanColourFeature:
    """A tiny cosine feature for tests: the mean colour, centred."""

    name = "mean-colour"
    metric = "cosine"

    def dim(self, image_size):
        return 3

    def __call__(self, images):
        return images.mean(dim=(2, 3)) - 0.5


@pytest.fixture
def random_images():
    return np.random.default_rng(0).integers(0, 256, size=(120, 8, 8, 3), dtype=np.uint8)


@pytest.fixture
def entries():
    return [IndexEntry(i, f"caption {i % 7}", copies=1 + (i % 3), label=str(i)) for i in range(120)]


@pytest.fixture
def mean_colour(monkeypatch):
    monkeypatch.setitem(_REGISTRY, "mean-colour", MeanColourFeature)


def test_pixel_search_equals_brute_force(random_images, entries):
    index = ReferenceIndex.from_images(random_images, entries, "pixel")
    queries = np.random.default_rng(1).uniform(-1, 1, size=(5, index.dim)).astype(np.float32)
    found = index.search(queries, k=10)
    database = embed_images(get_feature("pixel"), random_images).astype(np.float64)
    distances = np.linalg.norm(queries[:, None, :] - database[None], axis=-1)
    expected = np.argsort(distances, axis=1)[:, :10]
    np.testing.assert_array_equal(found.rows, expected)
    np.testing.assert_allclose(found.distances, np.take_along_axis(distances, expected, 1), rtol=1e-4)
    assert found.captions[0] == [entries[r].caption for r in expected[0]]
    np.testing.assert_array_equal(found.copies[0], [entries[r].copies for r in expected[0]])
    match = index.match(queries[:1])[0]
    assert match.nl2 == pytest.approx(normalized_l2(np.sort(distances[0])), rel=1e-4)
    assert match.similarity == pytest.approx(1 - match.nl2 / 2)


def test_cosine_search_equals_brute_force(random_images, entries, mean_colour):
    index = ReferenceIndex.from_images(random_images, entries, "mean-colour")
    queries = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    found = index.search(queries, k=5)
    database = embed_images(MeanColourFeature(), random_images).astype(np.float64)
    database /= np.linalg.norm(database, axis=1, keepdims=True)
    cosines = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ database.T
    expected = np.argsort(-cosines, axis=1)[:, :5]
    np.testing.assert_array_equal(found.rows, expected)
    np.testing.assert_allclose(found.distances, np.take_along_axis(cosines, expected, 1), rtol=1e-4)
    match = index.match(queries[:1])[0]
    assert match.nl2 is None and match.similarity == pytest.approx(cosines[0].max(), rel=1e-4)


def test_save_load_round_trip(tmp_path, random_images, entries, mean_colour):
    for feature in ("pixel", "mean-colour"):
        index = ReferenceIndex.from_images(random_images, entries, feature)
        index.save(tmp_path / feature)
        loaded = ReferenceIndex.load(tmp_path / feature, feature=feature, dim=index.dim)
        assert loaded.entries == entries and loaded.image_size == 8 and loaded.source_sha256 == index.source_sha256
        query = embed_images(index.feature, random_images[:3])
        np.testing.assert_array_equal(loaded.search(query, 7).rows, index.search(query, 7).rows)
        np.testing.assert_array_equal(loaded.vectors([0, 5]), index.vectors([0, 5]))


def test_k_larger_than_the_index_is_clamped(random_images, entries):
    index = ReferenceIndex.from_images(random_images[:4], entries[:4], "pixel")
    assert index.search(embed_images(index.feature, random_images[:1]), k=50).rows.shape == (1, 4)


def test_duplicate_caption_of_a_neighbourhood(random_images):
    entries = [IndexEntry(i, "popular" if i == 3 else f"single {i}", copies=32 if i == 3 else 1) for i in range(120)]
    index = ReferenceIndex.from_images(random_images, entries, "pixel")
    query = embed_images(index.feature, random_images[3:4])
    assert index.duplicate_caption(query, top_k=50) == "popular"
    assert index.duplicate_caption(query, top_k=50, min_count=40) is None


def test_the_two_neighbour_rules_count_copies_differently_on_purpose(random_images):
    """docs/decisions.md §11: nL2 over unique images, G_dup's tally with copies. An exact copy of a ×32 image keeps
    nL2 ≈ 0 (it would sit near 1/α = 2 if the 32 copies filled the k nearest), and its caption still wins the tally."""
    entries = [IndexEntry(i, "popular" if i == 3 else f"single {i}", copies=32 if i == 3 else 1) for i in range(120)]
    index = ReferenceIndex.from_images(random_images, entries, "pixel")
    query = embed_images(index.feature, random_images[3:4])
    match = index.match(query)[0]
    assert match.id == 3 and match.nl2 < 0.01
    unique = index.search(query, k=50).distances[0]
    assert match.nl2_scale == pytest.approx(0.5 * unique.mean(), rel=1e-5)  # α·mean over 50 unique neighbours
    assert index.duplicate_caption(query, top_k=50) == "popular"  # 32 > 20 only when copies count


@pytest.fixture
def saved(tmp_path, random_images, entries):
    ReferenceIndex.from_images(random_images, entries, "pixel").save(tmp_path / "idx")
    return tmp_path / "idx"


def test_feature_or_dimension_mismatch_is_a_clear_error(saved):
    with pytest.raises(IndexFormatError, match="built with feature 'pixel', but 'copydet' is needed"):
        ReferenceIndex.load(saved, feature="copydet")
    with pytest.raises(IndexFormatError, match="192-d vectors but 3072-d are needed"):
        ReferenceIndex.load(saved, dim=3072)


def test_truncated_or_corrupted_index_is_a_clear_error(saved):
    payload = (saved / FAISS_FILE).read_bytes()
    (saved / FAISS_FILE).write_bytes(payload[: len(payload) // 2])
    with pytest.raises(IndexFormatError, match=r"truncated or corrupted.*index build"):
        ReferenceIndex.load(saved)
    (saved / FAISS_FILE).unlink()
    with pytest.raises(IndexFormatError, match=r"missing index\.npz"):
        ReferenceIndex.load(saved)


def test_inconsistent_metadata_or_header_is_a_clear_error(saved):
    lines = (saved / METADATA_FILE).read_text().splitlines()
    (saved / METADATA_FILE).write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(IndexFormatError, match=r"120 vectors .* and 119 metadata rows"):
        ReferenceIndex.load(saved)
    (saved / METADATA_FILE).write_text("\n".join(lines) + "\n")
    header = json.loads((saved / HEADER_FILE).read_text())
    (saved / HEADER_FILE).write_text(json.dumps({**header, "format_version": 99}))
    with pytest.raises(IndexFormatError, match="format 99"):
        ReferenceIndex.load(saved)
    (saved / HEADER_FILE).write_text(json.dumps({**header, "feature": "sscd"}))
    with pytest.raises(IndexFormatError, match="unknown feature 'sscd'"):
        ReferenceIndex.load(saved)
    (saved / HEADER_FILE).write_text("{")
    with pytest.raises(IndexFormatError, match="malformed"):
        ReferenceIndex.load(saved)


def test_unknown_feature_lists_the_choices():
    with pytest.raises(KeyError, match="choose one of: copydet, copydet-guide, pixel"):
        get_feature("dinov3")


def test_shipped_index_finds_training_images_and_not_holdout_ones(emojimem):
    index = ReferenceIndex.load(SHIPPED_PIXEL_INDEX, feature="pixel", dim=3072)
    assert [e.id for e in index.entries] == emojimem.ids("train")
    train_id, holdout_id = emojimem.ids("train")[10], emojimem.ids("holdout")[10]
    train_match, holdout_match = index.match(embed_images(index.feature, emojimem.images[[train_id, holdout_id]]))
    assert train_match.id == train_id and train_match.nl2 == pytest.approx(0, abs=1e-6)
    assert holdout_match.id != holdout_id and holdout_match.nl2 > 0.3
