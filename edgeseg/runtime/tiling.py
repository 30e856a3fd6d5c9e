"""Overlapping tiles for images larger than a model should see at once, blended with a smooth window.

Every tile's output is weighted by a separable window that is 1 in the middle and falls off with a
raised-cosine ramp towards tile edges that lie inside the image (edges on the image border keep full weight),
so seams between tiles vanish. The weights never reach zero, so every pixel's total weight is positive.

Rows of tiles are processed top to bottom and finished rows are handed out at once: the accumulator only spans
one tile height, not the whole image, so a 4K frame with many classes does not need a full-size score volume.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of ``tile``-sized tiles covering ``[0, length)``, sharing at least ``overlap`` pixels.

    The last tile is aligned with the end, so every tile has the full size when ``length >= tile``.
    """
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def edge_ramp(size: int, ramp: int, fade_start: bool, fade_end: bool) -> np.ndarray:
    """1-D window of ``size`` weights: 1, with a raised-cosine rise of ``ramp`` pixels at faded ends."""
    weights = np.ones(size, dtype=np.float32)
    ramp = min(ramp, size // 2)
    if ramp > 0:
        rise = (0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)).astype(np.float32)
        if fade_start:
            weights[:ramp] = rise
        if fade_end:
            weights[size - ramp :] = rise[::-1]
    return weights


TileFn = Callable[[int, int, int, int], np.ndarray]
EmitFn = Callable[[int, np.ndarray], None]


def blend_tiles(
    height: int,
    width: int,
    tile: int,
    overlap: int,
    infer: TileFn,
    emit: EmitFn,
    labels: bool = False,
) -> None:
    """Run ``infer(y, x, h, w)`` on every tile and pass finished horizontal bands to ``emit(y0, band)``.

    ``infer`` returns C×h×w scores for the image window at (y, x); bands are their weighted average,
    C×rows×width, emitted in order from the top. With ``labels=True`` ``infer`` returns h×w class labels
    instead (models with an argmax output), and each pixel takes the label of the tile whose window weighs
    most there.
    """
    tile_h, tile_w = min(tile, height), min(tile, width)
    ys = tile_starts(height, tile_h, overlap)
    xs = tile_starts(width, tile_w, overlap)
    win_x = [edge_ramp(tile_w, overlap, x > 0, x + tile_w < width) for x in xs]
    acc: np.ndarray | None = None
    weight = np.zeros((tile_h, width), dtype=np.float32)
    band_y = 0
    for row, y in enumerate(ys):
        if row > 0:
            shift = y - band_y
            weight[: tile_h - shift] = weight[shift:]
            weight[tile_h - shift :] = 0
            if acc is not None:
                acc[..., : tile_h - shift, :] = acc[..., shift:, :]
                acc[..., tile_h - shift :, :] = 0
            band_y = y
        win_y = edge_ramp(tile_h, overlap, y > 0, y + tile_h < height)
        for x, wx in zip(xs, win_x, strict=True):
            window = win_y[:, None] * wx[None, :]
            out = infer(y, x, tile_h, tile_w)
            if acc is None:
                shape = (tile_h, width) if labels else (out.shape[0], tile_h, width)
                acc = np.zeros(shape, dtype=out.dtype if labels else np.float32)
            if labels:
                better = window > weight[:, x : x + tile_w]
                np.copyto(acc[:, x : x + tile_w], out, where=better)
                np.maximum(weight[:, x : x + tile_w], window, out=weight[:, x : x + tile_w])
            else:
                acc[:, :, x : x + tile_w] += out * window
                weight[:, x : x + tile_w] += window
        done = (ys[row + 1] if row + 1 < len(ys) else height) - y
        assert acc is not None
        if labels:
            emit(y, acc[:done].copy())
        else:
            emit(y, acc[:, :done] / weight[None, :done])
