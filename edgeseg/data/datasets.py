"""Segmentation datasets: the common interface and the file-backed dataset every folder layout produces.

A dataset maps an index to ``(image uint8 H×W×3 RGB, mask int64 H×W)``. Mask values are class indices in
``[0, num_classes)`` or ``ignore_index``; anything else stops with an :class:`InputError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from edgeseg.errors import InputError
from edgeseg.runtime.metadata import IGNORE_INDEX

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class SegDataset(torch.utils.data.Dataset):
    """Interface shared by all edgeseg datasets.

    Attributes: ``root`` (folder or ``"synthetic"``), ``split``, ``layout``, ``classes`` (names in label
    order), ``palette`` (``[r, g, b]`` per class), ``ignore_index``, and ``fixed_size`` — ``(H, W)`` when
    every sample has that size, else None (then batches need cropping, or validation batches of one).
    """

    root: str
    split: str
    layout: str
    classes: list[str]
    palette: list[list[int]]
    ignore_index: int
    fixed_size: tuple[int, int] | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(classes)``."""
        return len(self.classes)

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def check_labels(self) -> None:
        """Check every mask's values before training reads them; a no-op where labels cannot be wrong."""

    def describe(self) -> str:
        """One line for logs: layout, root, split, size and classes."""
        return (
            f"{self.layout} dataset at {self.root} (split {self.split!r}): {len(self)} images, "
            f"{self.num_classes} classes"
        )

    def _index(self, index: int) -> int:
        """Check ``index`` against the length (negative counts from the end) and return it normalised."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        return index % n


class JoinedDataset(SegDataset):
    """``first`` followed by ``extra``: one training set of both (teacher-labelled images beside the labelled
    ones, ``distill.unlabelled_mode: pseudo``).

    Classes, palette, ``ignore_index``, root and split are ``first``'s; ``extra`` must have the same classes.
    ``fixed_size`` is kept only when both share it.
    """

    def __init__(self, first: SegDataset, extra: SegDataset) -> None:
        if list(extra.classes) != list(first.classes):
            raise InputError(
                f"the {len(extra.classes)} classes of {extra.describe()} differ from the "
                f"{len(first.classes)} of {first.describe()}"
            )
        self.first, self.extra = first, extra
        self.root, self.split, self.layout = first.root, first.split, first.layout
        self.classes, self.palette, self.ignore_index = first.classes, first.palette, first.ignore_index
        same = first.fixed_size is not None and first.fixed_size == extra.fixed_size
        self.fixed_size = first.fixed_size if same else None

    def __len__(self) -> int:
        return len(self.first) + len(self.extra)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        index = self._index(index)
        n = len(self.first)
        return self.first[index] if index < n else self.extra[index - n]

    def check_labels(self) -> None:
        """Check both parts' masks."""
        self.first.check_labels()
        self.extra.check_labels()

    def describe(self) -> str:
        """Both parts' lines, joined by ``" + "``."""
        return f"{self.first.describe()} + {self.extra.describe()}"


def read_image(path: Path) -> np.ndarray:
    """Read an image file as uint8 H×W×3 RGB; raise InputError naming the file when it cannot be decoded."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot read image {path}: {err}") from None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header only; raise InputError naming the file when it is unreadable."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot read image {path}: {err}") from None


def read_mask(path: Path, palette: list[list[int]]) -> np.ndarray:
    """Read a label mask as int64 H×W.

    Palette (``P``), grey (``L``) and 16/32-bit masks give their values; RGB masks are mapped through
    ``palette`` (a colour not in it is an error naming the file and the colour).
    """
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGB", "RGBA"):
                return _rgb_to_labels(np.asarray(img.convert("RGB")), palette, path)
            if img.mode in ("P", "L", "1", "I", "I;16", "I;16B", "I;16L"):
                return np.asarray(img).astype(np.int64)
            raise InputError(f"mask {path} has image mode {img.mode}; expected a palette, grey or RGB PNG")
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot read mask {path}: {err}") from None


def _rgb_to_labels(rgb: np.ndarray, palette: list[list[int]], path: Path) -> np.ndarray:
    """Map each pixel's colour to its class index through ``palette``."""
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in palette], dtype=np.int64)
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[order], codes), 0, len(keys) - 1)
    found = keys[order][pos] == codes
    if not found.all():
        code = int(codes[~found][0])
        colour = [(code >> 16) & 255, (code >> 8) & 255, code & 255]
        raise InputError(f"mask {path}: colour {colour} is not in the class palette")
    return order[pos].astype(np.int64)


class FileSegDataset(SegDataset):
    """Image/mask file pairs from one of the folder layouts.

    ``label_map`` (256 entries) translates raw mask values first (Cityscapes label ids -> train ids; -1 marks
    values that are not valid ids). ``file_ignore`` is the value the files use for unlabelled pixels; it is
    returned as ``ignore_index``. Construction checks only headers (every image readable, each mask the size
    of its image); pixel values are checked by ``check_labels`` and as each sample is read.
    """

    def __init__(
        self,
        *,
        root: Path,
        split: str,
        layout: str,
        pairs: list[tuple[Path, Path]],
        classes: list[str],
        palette: list[list[int]],
        ignore_index: int = IGNORE_INDEX,
        file_ignore: int | None = None,
        label_map: np.ndarray | None = None,
    ) -> None:
        if not pairs:
            raise InputError(f"{root}: the {layout} dataset's split {split!r} has no images")
        self.root = str(root)
        self.split = split
        self.layout = layout
        self.classes = list(classes)
        self.palette = [list(c) for c in palette]
        self.ignore_index = ignore_index
        self.file_ignore = ignore_index if file_ignore is None else file_ignore
        self.label_map = label_map
        self.files = [image for image, _ in pairs]
        self.mask_files = [mask for _, mask in pairs]
        for image, mask in pairs:
            if image_size(image) != image_size(mask):
                (iw, ih), (mw, mh) = image_size(image), image_size(mask)
                raise InputError(f"mask {mask} is {mw}x{mh} but its image {image} is {iw}x{ih}")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        index = self._index(index)
        image_path, mask_path = self.files[index], self.mask_files[index]
        image = read_image(image_path)
        mask = read_mask(mask_path, self.palette)
        if mask.shape != image.shape[:2]:
            raise InputError(
                f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        return image, self._labels(mask, mask_path)

    def check_labels(self) -> None:
        """Read every mask and check its values, as ``__getitem__`` does; the first bad file is an InputError
        naming it and the value (otherwise found only when the loader reaches it, mid-epoch)."""
        for path in self.mask_files:
            self._labels(read_mask(path, self.palette), path)

    def _labels(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Translate raw mask values to class indices and ``ignore_index``, checking every value."""
        if self.label_map is not None:
            if raw.max(initial=0) > 255:
                raise InputError(f"mask {path}: label value {int(raw.max())} is out of range 0-255")
            mapped = self.label_map[raw]
            if (mapped < 0).any():
                bad = int(raw[mapped < 0][0])
                raise InputError(f"mask {path}: label value {bad} is not a valid {self.layout} label id")
            raw = mapped
        ignore = raw == self.file_ignore
        invalid = ~ignore & ((raw >= self.num_classes) | (raw < 0))
        if invalid.any():
            bad = int(raw[invalid].max())
            raise InputError(
                f"mask {path}: label value {bad} is >= num_classes ({self.num_classes}) and is not "
                f"ignore_index ({self.file_ignore})"
            )
        if self.file_ignore != self.ignore_index:
            raw = np.where(ignore, self.ignore_index, raw)
        return raw.astype(np.int64, copy=False)
