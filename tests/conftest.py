"""Shared fixtures: the shipped EmojiMem assets and whether the emoji font is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from memdemo.data.emojimem import DEFAULT_DIR, EmojiMem
from memdemo.data.render import FontNotFoundError, find_noto_font

REPO = Path(__file__).resolve().parents[1]
SHIPPED_PIXEL_INDEX = REPO / "indexes" / "emojimem-pixel"


def _font_installed() -> bool:
    try:
        find_noto_font()
    except FontNotFoundError:
        return False
    return True


needs_font = pytest.mark.skipif(
    not _font_installed(), reason="needs the Debian package fonts-noto-color-emoji (CI installs it)"
)


@pytest.fixture(scope="session")
def emojimem() -> EmojiMem:
    return EmojiMem.load(DEFAULT_DIR)
