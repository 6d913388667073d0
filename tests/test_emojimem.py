import json
from collections import defaultdict

import numpy as np
import pytest
from conftest import needs_font

from memdemo.data.emojimem import (
    CARD_FILE,
    DEFAULT_DIR,
    IMAGES_FILE,
    METADATA_FILE,
    DatasetError,
    EmojiMem,
    SplitConfig,
    build_emojimem,
    split_families,
)
from memdemo.data.render import EmojiRenderer, FontNotFoundError


def test_shipped_dataset_has_the_promised_shape(emojimem):
    assert emojimem.images.dtype == np.uint8 and emojimem.images.shape[1:] == (32, 32, 3)
    assert len(emojimem.records) >= 1400
    duplicated = [r for r in emojimem.records if r.copies > 1]
    assert len(duplicated) >= 90 and {r.copies for r in duplicated} == {32}
    assert all(r.split == "train" for r in duplicated)
    assert all((r.copies == 0) == (r.split == "holdout") for r in emojimem.records)
    assert 0.10 <= len(emojimem.ids("holdout")) / len(emojimem.records) <= 0.14
    assert all(r.caption.strip() for r in emojimem.records)


def test_shipped_images_are_unique_and_not_blank(emojimem):
    flat = emojimem.images.reshape(len(emojimem.images), -1)
    assert len(np.unique(flat, axis=0)) == len(flat)
    assert (flat.min(axis=1) < 200).all()


def test_families_never_straddle_the_split(emojimem):
    splits_of_family = defaultdict(set)
    for record in emojimem.records:
        splits_of_family[record.family].add(record.split)
    assert all(len(splits) == 1 for splits in splits_of_family.values())


def test_card_counts_match_the_metadata(emojimem):
    card = json.loads((DEFAULT_DIR / CARD_FILE).read_text())
    assert card["counts"]["unique"] == len(emojimem.records)
    assert card["counts"]["training_entries"] == sum(r.copies for r in emojimem.records)


def test_split_is_seeded_keeps_families_whole_and_marks_duplicates():
    families = [i // 3 for i in range(300)]
    config = SplitConfig(seed=7, holdout_fraction=0.12, duplicated=20, copies=5)
    splits, copies = split_families(families, config)
    assert (splits, copies) == split_families(families, config)
    assert splits.count("holdout") == 36
    for family in set(families):
        assert len({splits[i] for i in range(300) if families[i] == family}) == 1
    assert copies.count(5) == 20 and all(copies[i] == 0 for i in range(300) if splits[i] == "holdout")
    assert split_families(families, SplitConfig(seed=8, duplicated=20, copies=5))[0] != splits


def test_split_rejects_more_duplicates_than_training_emoji():
    with pytest.raises(ValueError, match="cannot duplicate"):
        split_families(list(range(10)), SplitConfig(duplicated=50))


def test_missing_font_names_the_package_to_install(tmp_path):
    with pytest.raises(FontNotFoundError, match="fonts-noto-color-emoji"):
        EmojiRenderer(tmp_path / "NotoColorEmoji.ttf")


@needs_font
def test_same_seed_gives_the_same_bytes(tmp_path):
    for name in ("a", "b"):
        dataset, card = build_emojimem(32, SplitConfig(seed=3))
        dataset.save(tmp_path / name, card)
    for file in (IMAGES_FILE, METADATA_FILE, CARD_FILE):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


@needs_font
def test_shipped_dataset_is_what_the_builder_makes(tmp_path):
    card = json.loads((DEFAULT_DIR / CARD_FILE).read_text())
    dataset, built_card = build_emojimem(card["image_size"], SplitConfig(**card["split"]))
    if built_card["source"] != card["source"]:
        pytest.skip("another font or Pillow version renders differently from the one that built the assets")
    dataset.save(tmp_path, built_card)
    for file in (IMAGES_FILE, METADATA_FILE):
        assert (tmp_path / file).read_bytes() == (DEFAULT_DIR / file).read_bytes()


@needs_font
def test_renderer_draws_a_centred_colour_emoji_on_white():
    image = EmojiRenderer().render("🍎", 64)
    assert image.shape == (64, 64, 3)
    assert (image[0, 0] == 255).all()
    red = image[..., 0].astype(int) - image[..., 1:].mean(-1)
    assert red[16:48, 16:48].mean() > 60


def _write(folder, images, records):
    folder.mkdir(exist_ok=True)
    np.save(folder / IMAGES_FILE, images)
    (folder / METADATA_FILE).write_text("\n".join(json.dumps(r) for r in records) + "\n")


def test_load_rejects_incomplete_or_inconsistent_folders(tmp_path, emojimem):
    with pytest.raises(DatasetError, match="build-emojimem"):
        EmojiMem.load(tmp_path)
    record = {"id": 0, "emoji": "🍎", "caption": "red apple", "split": "train", "copies": 1, "family": 0}
    record["version"] = 0.6
    _write(tmp_path / "count", emojimem.images[:2], [record])
    with pytest.raises(DatasetError, match="2 images but 1 metadata rows"):
        EmojiMem.load(tmp_path / "count")
    _write(tmp_path / "shape", emojimem.images[:1, :, :, :2], [record])
    with pytest.raises(DatasetError, match="uint8 N×S×S×3"):
        EmojiMem.load(tmp_path / "shape")
    _write(tmp_path / "json", emojimem.images[:1], [record])
    (tmp_path / "json" / METADATA_FILE).write_text("{not json\n")
    with pytest.raises(DatasetError, match="malformed"):
        EmojiMem.load(tmp_path / "json")
    _write(tmp_path / "pickle", emojimem.images[:1], [record])
    np.save(tmp_path / "pickle" / IMAGES_FILE, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="not a readable NumPy array"):
        EmojiMem.load(tmp_path / "pickle")
