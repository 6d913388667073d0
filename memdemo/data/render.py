"""Render Noto Color Emoji glyphs to small RGB images on white with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from memdemo.errors import MemdemoError

NOTO_FONT_PATHS = (
    Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
    Path("/usr/share/fonts/noto/NotoColorEmoji.ttf"),
    Path("/Library/Fonts/NotoColorEmoji.ttf"),
)
# NotoColorEmoji is a CBDT bitmap font: FreeType only loads it at its native strike size.
_NATIVE_SIZE = 109
_CANVAS = (400, 160)


class FontNotFoundError(MemdemoError, FileNotFoundError):
    """Raised when Noto Color Emoji is not installed."""


def find_noto_font(path: str | Path | None = None) -> Path:
    """The Noto Color Emoji font file, or an error naming the package that installs it."""
    candidates = [Path(path)] if path else list(NOTO_FONT_PATHS)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FontNotFoundError(
        f"Noto Color Emoji not found (looked in {', '.join(map(str, candidates))}). "
        "Install it with `sudo apt-get install fonts-noto-color-emoji` (Debian/Ubuntu) "
        "or pass --font PATH/TO/NotoColorEmoji.ttf."
    )


class EmojiRenderer:
    """Draws one emoji, crops it to its glyph, pads it to a square and downsizes it onto white."""

    def __init__(self, font_path: str | Path | None = None) -> None:
        self.font_path = find_noto_font(font_path)
        self._font = ImageFont.truetype(str(self.font_path), _NATIVE_SIZE)

    def render(self, text: str, size: int) -> np.ndarray:
        """uint8 array (size, size, 3) of `text` centred on white; raises ValueError for an empty glyph."""
        canvas = Image.new("RGBA", _CANVAS, (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((0, 0), text, font=self._font, embedded_color=True)
        bbox = canvas.getchannel("A").getbbox()
        if bbox is None:
            raise ValueError(f"the font has no glyph for {text!r}")
        glyph = canvas.crop(bbox)
        side = max(glyph.size)
        square = Image.new("RGBA", (side, side), (255, 255, 255, 0))
        square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
        white = Image.new("RGBA", (side, side), (255, 255, 255, 255))
        on_white = Image.alpha_composite(white, square).convert("RGB")
        return np.asarray(on_white.resize((size, size), Image.LANCZOS), dtype=np.uint8)
