"""Image sizes written as text: the one ``HxW`` parser (CLI options, recipes, ONNX metadata)."""

from __future__ import annotations

import re

from edgeseg.errors import InputError

_HW = re.compile(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*$")


def parse_hw(text: str, what: str = "size", minimum: int = 1, square: bool = False) -> tuple[int, int]:
    """``"HxW"`` (``x``, ``X`` or ``×``) → ``(H, W)``; with ``square``, one number ``N`` means ``NxN``.

    InputError naming ``what`` for anything else, or for a side below ``minimum``.
    """
    match = _HW.match(str(text))
    if match is None or (match.group(2) is None and not square):
        raise InputError(f"{what} {text!r} is not HxW (for example 512x512)")
    height = int(match.group(1))
    width = int(match.group(2) or height)
    if height < minimum or width < minimum:
        raise InputError(f"{what} {text!r}: height and width must be at least {minimum}")
    return height, width
