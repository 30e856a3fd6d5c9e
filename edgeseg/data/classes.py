"""Class names and palettes: the layouts' defaults and the optional ``classes.txt`` beside the data.

``classes.txt`` holds one class per line, in label order: ``name`` or ``name r g b``. Blank lines and lines
starting with ``#`` are skipped. Classes given without a colour get the Pascal-VOC colour map's entry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.errors import InputError
from edgeseg.runtime.image import voc_palette
from edgeseg.runtime.metadata import IGNORE_INDEX

CLASSES_FILE = "classes.txt"

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
]  # fmt: skip

CITYSCAPES_CLASSES = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
]  # fmt: skip

CITYSCAPES_PALETTE = [
    [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153], [153, 153, 153],
    [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
    [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32],
]  # fmt: skip

# Cityscapes label id -> train id, for ids 0..33 (the official table; unlisted ids are ignored).
_CITYSCAPES_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
    27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
CITYSCAPES_NUM_LABEL_IDS = 34


def cityscapes_id_to_train_id(ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Lookup table of 256 entries: label id -> train id; untrained ids 0..33 map to ``ignore_index``.

    Entries 34..255 are -1: such values are not Cityscapes label ids, and the dataset reports them.
    """
    lut = np.full(256, -1, dtype=np.int64)
    lut[:CITYSCAPES_NUM_LABEL_IDS] = ignore_index
    for label_id, train_id in _CITYSCAPES_TRAIN_IDS.items():
        lut[label_id] = train_id
    return lut


def read_classes_file(path: str | Path) -> tuple[list[str], list[list[int]]]:
    """Read a ``classes.txt`` into (names, palette); InputError naming the file and line if malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from None
    names: list[str] = []
    colours: list[list[int] | None] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) == 1:
            names.append(parts[0])
            colours.append(None)
            continue
        if len(parts) != 4:
            raise InputError(f"{path} line {lineno}: expected 'name' or 'name r g b', got {line!r}")
        try:
            rgb = [int(v) for v in parts[1:]]
        except ValueError:
            raise InputError(
                f"{path} line {lineno}: colour values must be integers 0-255, got {line!r}"
            ) from None
        if any(not 0 <= v <= 255 for v in rgb):
            raise InputError(f"{path} line {lineno}: colour values must be in 0-255, got {line!r}")
        names.append(parts[0])
        colours.append(rgb)
    if not names:
        raise InputError(f"{path} lists no classes")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"{path}: class name {dup!r} appears more than once")
    defaults = voc_palette(len(names))
    return names, [c if c is not None else d for c, d in zip(colours, defaults, strict=True)]


def resolve_classes(
    root: Path,
    default_names: list[str] | None,
    default_palette: list[list[int]] | None,
    num_classes: int | None,
) -> tuple[list[str], list[list[int]]]:
    """Classes for a dataset at ``root``: its ``classes.txt`` if present, else the layout's defaults.

    ``num_classes`` (from the config) must agree with them; with no defaults and no file it names the
    classes ``class_0``, ``class_1``, ... Raise InputError when the count is unknown or disagrees.
    """
    file = root / CLASSES_FILE
    if file.is_file():
        names, palette = read_classes_file(file)
        source = str(file)
    elif default_names is not None:
        names = list(default_names)
        palette = [list(c) for c in default_palette] if default_palette else voc_palette(len(names))
        source = "the layout's default classes"
    elif num_classes is not None:
        names = [f"class_{i}" for i in range(num_classes)]
        palette = voc_palette(num_classes)
        source = "data.num_classes"
    else:
        raise InputError(
            f"{root}: the number of classes is unknown; add {file} (one class name per line) "
            "or set data.num_classes"
        )
    if num_classes is not None and num_classes != len(names):
        raise InputError(f"data.num_classes is {num_classes} but {source} lists {len(names)} classes")
    return names, palette
