"""A contact sheet of EmojiMem: every image, duplicated ones framed red, holdout ones framed blue."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from memdemo.data.emojimem import EmojiMem

DUPLICATED_FRAME = (220, 30, 30)
HOLDOUT_FRAME = (30, 90, 220)
_LEGEND_HEIGHT = 22


def contact_sheet(dataset: EmojiMem, columns: int = 48, pad: int = 2) -> Image.Image:
    """One tile per unique image with a coloured frame for its role, and a one-line legend on top."""
    size = dataset.images.shape[1]
    tile = size + 2 * pad
    rows = -(-len(dataset.records) // columns)
    sheet = np.full((_LEGEND_HEIGHT + rows * tile, columns * tile, 3), 255, dtype=np.uint8)
    for record, image in zip(dataset.records, dataset.images, strict=True):
        top = _LEGEND_HEIGHT + (record.id // columns) * tile
        left = (record.id % columns) * tile
        frame = DUPLICATED_FRAME if record.copies > 1 else HOLDOUT_FRAME if record.split == "holdout" else None
        if frame:
            sheet[top : top + tile, left : left + tile] = frame
        sheet[top + pad : top + pad + size, left + pad : left + pad + size] = image
    picture = Image.fromarray(sheet)
    counts = {split: len(dataset.ids(split)) for split in ("train", "holdout")}
    duplicated = sum(r.copies > 1 for r in dataset.records)
    copies = max(r.copies for r in dataset.records)
    legend = (
        f"EmojiMem: {len(dataset.records)} unique emoji, {counts['train']} train, {counts['holdout']} holdout.  "
        f"Red frame: duplicated x{copies} in training ({duplicated}).  Blue frame: holdout, never trained on."
    )
    ImageDraw.Draw(picture).text((4, 4), legend, fill=(0, 0, 0), font=ImageFont.load_default(14))
    return picture
