"""Images in and out of the runtime: loading any accepted input as RGB uint8, palettes, masks, overlays."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgeseg.errors import InputError
from edgeseg.fileio import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

ImageInput = Any  # numpy H×W×3 uint8 array, PIL image, str or os.PathLike

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class ImageTooLarge(InputError):
    """An image whose pixel count exceeds the caller's limit (found from its header, before decoding)."""


def load_rgb(image: ImageInput) -> np.ndarray:
    """Return ``image`` as an H×W×3 uint8 RGB array.

    Accepts a path (read with Pillow, EXIF orientation applied, converted by :func:`pil_to_rgb`), a PIL image
    (converted by :func:`pil_to_rgb`) or an H×W×3 uint8 numpy array (returned as is, not copied). Anything
    else raises :class:`InputError` naming the file or the shape.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(
                f"expected an H×W×3 uint8 RGB array, got shape {image.shape} and dtype {image.dtype}"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise InputError(f"empty image of shape {image.shape}")
        return image
    if isinstance(image, Image.Image):
        return pil_to_rgb(image)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image not found: {path}")
        try:
            with Image.open(path) as img:
                return pil_to_rgb(ImageOps.exif_transpose(img))
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
            raise InputError(f"cannot read image {path}: {err}") from err
    raise InputError(
        f"unsupported image type {type(image).__name__}; pass a path, a PIL image or a numpy array"
    )


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """A PIL image of any mode as H×W×3 uint8 RGB.

    Greyscale is repeated over the channels, alpha dropped, palettes expanded; 16-bit greyscale is scaled to
    8 bits (Pillow's own conversion would clip everything above 255 to white).
    """
    if img.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(img).astype(np.float32)
        grey = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def decode_rgb(data: bytes, max_pixels: int | None = None, name: str = "upload") -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, WebP, BMP, TIFF, ...) as ``load_rgb`` reads a file of them.

    EXIF orientation is applied. ``max_pixels`` is checked against the header before any pixel is decoded
    and raises :class:`ImageTooLarge`; bytes that are not an image, or a truncated one, raise
    :class:`InputError` naming ``name``.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLarge(
                    f"{name}: image of {width}x{height} = {width * height} pixels exceeds the limit of "
                    f"{max_pixels} pixels"
                )
            img.load()
            return pil_to_rgb(ImageOps.exif_transpose(img))
    except Image.DecompressionBombError as err:  # Pillow's own limit, far above any sensible max_pixels
        raise ImageTooLarge(f"{name}: {err}") from err
    except UnidentifiedImageError as err:
        raise InputError(f"{name}: not an image (no format Pillow reads matches its bytes)") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise InputError(f"{name}: not a readable image ({err})") from err


def voc_palette(num_colors: int) -> list[list[int]]:
    """The Pascal VOC colour map (class index bits spread over R, G, B): the palette of VOC's classes, and
    the default colours of classes (and models) that do not name their own."""
    palette = []
    for index in range(num_colors):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.append([r, g, b])
    return palette


def palette_array(palette: list[list[int]]) -> np.ndarray:
    """A 256×3 uint8 lookup table: the palette's colours, then black for unused indices."""
    table = np.zeros((256, 3), dtype=np.uint8)
    if palette:
        colors = np.asarray(palette[:256], dtype=np.int64)
        if colors.ndim != 2 or colors.shape[1] != 3 or colors.min() < 0 or colors.max() > 255:
            raise InputError(f"palette must be a list of [r, g, b] values in 0..255, got {palette[:4]!r}...")
        table[: len(colors)] = colors
    return table


def mask_image(labels: np.ndarray, palette: list[list[int]]) -> Image.Image:
    """An H×W label map as a PIL image of mode "P" carrying ``palette``; reading it back gives the labels."""
    if labels.dtype != np.uint8:
        if labels.max(initial=0) > 255:
            raise InputError("masks with labels above 255 cannot be stored as palette PNGs")
        labels = labels.astype(np.uint8)
    img = Image.fromarray(labels)  # mode "L"; putpalette turns it into "P" without touching the values
    img.putpalette(palette_array(palette).ravel().tolist())
    return img


def colorize(labels: np.ndarray, palette: list[list[int]]) -> np.ndarray:
    """An H×W×3 uint8 RGB rendering of a label map."""
    return palette_array(palette)[labels]


def overlay(
    image: np.ndarray, labels: np.ndarray, palette: list[list[int]], alpha: float = 0.5
) -> np.ndarray:
    """Blend the coloured mask over the image: ``(1 - alpha) * image + alpha * colour``, uint8 RGB."""
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be within [0, 1], got {alpha}")
    if image.shape[:2] != labels.shape:
        raise InputError(f"mask size {labels.shape} differs from image size {image.shape[:2]}")
    blended = image.astype(np.float32) * (1.0 - alpha)
    blended += colorize(labels, palette).astype(np.float32) * alpha
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def save_png(img: Image.Image, path: str | os.PathLike) -> None:
    """Write a PIL image as PNG atomically (temporary file beside the target, then rename)."""
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
