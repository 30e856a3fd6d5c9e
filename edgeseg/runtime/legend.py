"""A legend of the classes present in a label map, drawn below a picture (Pillow only, no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


def legend_entries(
    labels: np.ndarray, classes: Sequence[str], palette: Sequence[Sequence[int]]
) -> list[tuple[int, str, tuple[int, int, int]]]:
    """``(index, name, colour)`` of every class present in ``labels``, in class order.

    Labels beyond ``classes`` or ``palette`` are named ``class <index>`` and drawn black (as ``colorize``).
    """
    entries = []
    for index in np.unique(labels).tolist():
        name = classes[index] if index < len(classes) else f"class {index}"
        colour = tuple(int(v) for v in palette[index]) if index < len(palette) else (0, 0, 0)
        entries.append((int(index), str(name), colour))
    return entries  # type: ignore[return-value]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap font of fixed size
        return ImageFont.load_default()


def with_legend(
    picture: np.ndarray, labels: np.ndarray, classes: Sequence[str], palette: Sequence[Sequence[int]]
) -> np.ndarray:
    """``picture`` (H×W×3 uint8) above a white band naming the classes present in ``labels``.

    Each entry is a swatch of the class colour and the class name; entries wrap into rows as wide as the
    picture, and a picture narrower than one entry is padded on the right with white.
    """
    height, width = picture.shape[:2]
    size = max(11, min(28, width // 45))
    font = _font(size)
    pad, gap = size // 2, size
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = []
    for _, name, colour in legend_entries(labels, classes, palette):
        text_w = int(np.ceil(probe.textlength(name, font=font)))
        boxes.append((name, colour, size + pad // 2 + text_w))
    canvas_w = max(width, max((w for *_, w in boxes), default=0) + 2 * pad)
    rows: list[list[tuple[str, tuple[int, int, int], int]]] = [[]]
    used = pad
    for box in boxes:
        if rows[-1] and used + box[2] > canvas_w - pad:
            rows.append([])
            used = pad
        rows[-1].append(box)
        used += box[2] + gap
    line = size + pad
    band = pad + line * len(rows)
    canvas = Image.new("RGB", (canvas_w, height + band), BACKGROUND)
    canvas.paste(Image.fromarray(picture), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        x, y = pad, height + pad + r * line
        for name, colour, entry_w in row:
            draw.rectangle((x, y, x + size - 1, y + size - 1), fill=colour, outline=TEXT)
            draw.text((x + size + pad // 2, y + size // 2), name, fill=TEXT, font=font, anchor="lm")
            x += entry_w + gap
    return np.asarray(canvas)
