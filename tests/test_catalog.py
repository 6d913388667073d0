from memdemo.data.catalog import MAX_EMOJI_VERSION, caption_of, emojimem_catalog, has_skin_tone, is_flag, name_family


def test_caption_is_the_english_name_without_colons_and_underscores():
    assert caption_of(":grinning_face:") == "grinning face"
    assert caption_of(":one_o’clock:") == "one o'clock"


def test_flags_are_recognised():
    assert is_flag("🇯🇵", "Japan")
    assert is_flag("🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", "England")
    assert is_flag("🏳️‍🌈", "rainbow flag")
    assert not is_flag("⛳", "flag in hole")
    assert not is_flag("📫", "closed mailbox with raised flag")


def test_skin_tone_variants_are_recognised():
    assert has_skin_tone("👍🏽")
    assert not has_skin_tone("👍")


def test_name_rules_put_near_twins_in_one_family():
    twins = [
        ("man: bald", "woman: bald"),
        ("orange book", "green book"),
        ("five o'clock", "seven-thirty"),
        ("keycap 8", "keycap 9"),
        ("leftwards pushing hand", "rightwards pushing hand"),
        ("family: man, woman, boy", "family: adult, adult, child"),
        ("red heart", "light blue heart"),
    ]
    for a, b in twins:
        assert name_family(a) == name_family(b), (a, b)
    assert name_family("red apple") != name_family("grinning face")


def test_catalog_keeps_about_1600_emoji_without_flags_or_skin_tones():
    catalog = emojimem_catalog()
    assert 1500 <= len(catalog) <= 1700
    assert all(entry.version <= MAX_EMOJI_VERSION for entry in catalog)
    assert not any(is_flag(e.emoji, e.caption) or has_skin_tone(e.emoji) for e in catalog)
    assert len({e.caption for e in catalog}) == len(catalog)
    assert {"grinning face", "red apple", "backpack"} <= {e.caption for e in catalog}
