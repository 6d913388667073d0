"""Which emoji EmojiMem contains, their captions, and the name rules that group near-twins into families."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import emoji

MAX_EMOJI_VERSION = 15.1  # what Debian's Noto Color Emoji 2.042 covers
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)
_TAGS = range(0xE0020, 0xE0080)

# Words whose removal makes near-twins share a family key (docs/decisions.md §10).
_GENDER_WORDS = "man woman person men women people boy girl child adult older male female"
_COLOUR_WORDS = "red orange yellow green blue purple brown black white pink grey gray light dark"
_DIRECTION_WORDS = "left right leftwards rightwards up down upwards downwards"
_NUMBER_WORDS = "one two three four five six seven eight nine ten eleven twelve thirty 1st 2nd 3rd and with of"
_TWIN_WORDS = frozenset(" ".join((_GENDER_WORDS, _COLOUR_WORDS, _DIRECTION_WORDS, _NUMBER_WORDS)).split())
_CLOCK = re.compile(r"o'clock|-thirty")


@dataclass(frozen=True)
class CatalogEntry:
    """One emoji of the catalogue: its text, caption, Unicode emoji version and name-rule family key."""

    emoji: str
    caption: str
    version: float
    name_family: str


def caption_of(name: str) -> str:
    """':grinning_face:' → 'grinning face' (the `emoji` package's English name as a caption)."""
    return unicodedata.normalize("NFC", name.strip(":").replace("_", " ").replace("’", "'"))


def is_flag(text: str, caption: str) -> bool:
    """Country, subdivision and named flags (the rainbow flag, the chequered flag, ...)."""
    codepoints = [ord(c) for c in text]
    if any(c in _REGIONAL_INDICATORS or c in _TAGS for c in codepoints):
        return True
    return caption.endswith((" flag", " flags")) and "mailbox" not in caption


def has_skin_tone(text: str) -> bool:
    """True for the Fitzpatrick-modifier variants."""
    return any(ord(c) in _SKIN_TONES for c in text)


def name_family(caption: str) -> str:
    """Family key by name rules: drop gender, colour, direction and number words; clocks and keycaps collapse."""
    lowered = caption.lower()
    if lowered.startswith("keycap"):
        return "keycap"
    if _CLOCK.search(lowered):
        return "clock"
    for group in ("family", "kiss", "couple with heart", "people holding hands", "holding hands"):
        if lowered.startswith(group) or lowered.endswith(group):
            return group
    words = [w for w in re.split(r"[^a-z0-9!'#*]+", lowered) if w and w not in _TWIN_WORDS]
    return " ".join(words) or "person"


def emojimem_catalog() -> list[CatalogEntry]:
    """Fully-qualified emoji of version ≤ 15.1, no flags, no skin tones, sorted by code points."""
    entries = []
    for text, data in emoji.EMOJI_DATA.items():
        if data["status"] != emoji.STATUS["fully_qualified"] or data["E"] > MAX_EMOJI_VERSION:
            continue
        caption = caption_of(data["en"])
        if is_flag(text, caption) or has_skin_tone(text):
            continue
        entries.append(CatalogEntry(text, caption, float(data["E"]), name_family(caption)))
    entries.sort(key=lambda entry: [ord(c) for c in entry.emoji])
    return entries
