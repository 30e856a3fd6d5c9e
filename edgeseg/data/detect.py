"""Find which folder layout a dataset root uses, list its image/mask pairs, and build the dataset.

Layouts, checked in this order:

``voc``         ``JPEGImages/``, ``SegmentationClass/`` (palette PNGs, 255 = ignore) and
                ``ImageSets/Segmentation/{split}.txt``; without ``ImageSets/`` the masks are split by ratio.
                ``VOCdevkit/VOC2012`` style roots are followed down to the folder holding ``JPEGImages/``.
``cityscapes``  ``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` and
                ``gtFine/{split}/{city}/*_gtFine_labelIds.png``, label ids mapped to the 19 train ids
                (others ignored).
``generic``     ``images/`` and ``masks/`` paired by file stem, either with ``train/``/``val/`` subfolders in
                both or flat, split by ``data.split_ratio`` with ``data.split_seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.data.classes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    VOC_CLASSES,
    cityscapes_id_to_train_id,
    resolve_classes,
    voc_palette,
)
from edgeseg.data.config import SYNTHETIC, DataConfig
from edgeseg.data.datasets import IMAGE_EXTENSIONS, FileSegDataset, SegDataset
from edgeseg.errors import InputError

LAYOUTS = ("voc", "cityscapes", "generic")
_VOC_IGNORE = 255
_CITYSCAPES_IMAGE = "_leftImg8bit"
_CITYSCAPES_MASK = "_gtFine_labelIds"


def detect_layout(root: str | Path) -> tuple[str, Path]:
    """Return ``(layout, data_root)`` for the folder ``root``; InputError naming it when unrecognised."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise InputError(f"dataset root {root} is not a folder")
    candidates = [root] + sorted(p for p in (root / "VOC2012", *root.glob("VOC20*")) if p.is_dir())
    for folder in candidates:
        if (folder / "JPEGImages").is_dir() and (folder / "SegmentationClass").is_dir():
            return "voc", folder
    if (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir():
        return "cityscapes", root
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "generic", root
    raise InputError(
        f"unknown dataset layout in {root}: expected JPEGImages/ + SegmentationClass/ (Pascal-VOC), "
        "leftImg8bit/ + gtFine/ (Cityscapes) or images/ + masks/ (generic)"
    )


def build_dataset(root: str | Path, split: str, cfg: DataConfig | None = None) -> SegDataset:
    """Build the dataset for ``split`` at ``root`` (``"synthetic"`` or a folder whose layout is detected).

    ``cfg`` supplies the synthetic generator's settings, the generic layout's split ratio and seed,
    ``num_classes`` (checked against the classes found) and ``ignore_index``. Classes come from a
    ``classes.txt`` in the data folder, else the layout's defaults.
    """
    cfg = cfg or DataConfig()
    if str(root) == SYNTHETIC:
        from edgeseg.data.synthetic import SyntheticSegDataset

        return SyntheticSegDataset(
            split=split,
            num_samples=cfg.synthetic_train if split == "train" else cfg.synthetic_val,
            size=cfg.synthetic_size,
            seed=cfg.synthetic_seed,
            variant=cfg.synthetic_variant,
            ignore_index=cfg.ignore_index,
            num_classes=cfg.num_classes,
        )
    layout, folder = detect_layout(root)
    if layout == "voc":
        names, palette = resolve_classes(folder, VOC_CLASSES, voc_palette(len(VOC_CLASSES)), cfg.num_classes)
        pairs = _voc_pairs(folder, split, cfg)
        file_ignore, label_map = _VOC_IGNORE, None
    elif layout == "cityscapes":
        names, palette = resolve_classes(folder, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, cfg.num_classes)
        pairs = _cityscapes_pairs(folder, split)
        file_ignore, label_map = 255, cityscapes_id_to_train_id(255)
    else:
        names, palette = resolve_classes(folder, None, None, cfg.num_classes)
        pairs = _generic_pairs(folder, split, cfg)
        file_ignore, label_map = cfg.ignore_index, None
    return FileSegDataset(
        root=folder,
        split=split,
        layout=layout,
        pairs=pairs,
        classes=names,
        palette=palette,
        ignore_index=cfg.ignore_index,
        file_ignore=file_ignore,
        label_map=label_map,
    )


def _images_by_stem(folder: Path, what: str) -> dict[str, Path]:
    """Map stem -> path for the image files directly in ``folder``; two files with one stem is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            if path.stem in found:
                raise InputError(f"{what} {found[path.stem]} and {path} share the stem {path.stem!r}")
            found[path.stem] = path
    return found


def _pair(images: dict[str, Path], masks: dict[str, Path], mask_folder: Path) -> list[tuple[Path, Path]]:
    """Pair images with masks by stem; an image without a mask is an error naming both paths."""
    pairs = []
    for stem, image in sorted(images.items()):
        if stem not in masks:
            raise InputError(f"image {image} has no mask {mask_folder / stem}.png")
        pairs.append((image, masks[stem]))
    return pairs


def _ratio_split(stems: list[str], split: str, ratio: float, seed: int, where: Path) -> list[str]:
    """Split sorted ``stems`` into train/val by ``ratio`` with a fixed ``seed``; return ``split``'s share."""
    if split not in ("train", "val"):
        raise InputError(
            f"{where} has no split folders, so only splits 'train' and 'val' (by data.split_ratio) exist; "
            f"got {split!r}"
        )
    order = np.random.default_rng(seed).permutation(len(stems))
    n_train = round(ratio * len(stems))
    if 0.0 < ratio < 1.0 and len(stems) >= 2:  # both splits get at least one image
        n_train = min(max(n_train, 1), len(stems) - 1)
    chosen = order[:n_train] if split == "train" else order[n_train:]
    return sorted(stems[i] for i in chosen)


def _voc_pairs(folder: Path, split: str, cfg: DataConfig) -> list[tuple[Path, Path]]:
    """Pairs for a Pascal-VOC folder: ids from ``ImageSets/Segmentation/{split}.txt`` (or a ratio split)."""
    mask_dir = folder / "SegmentationClass"
    images = _images_by_stem(folder / "JPEGImages", "image")
    masks = _images_by_stem(mask_dir, "mask")
    sets = folder / "ImageSets" / "Segmentation"
    if sets.is_dir():
        list_file = sets / f"{split}.txt"
        if not list_file.is_file():
            available = sorted(p.stem for p in sets.glob("*.txt"))
            raise InputError(f"split file {list_file} does not exist (available splits: {available})")
        ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise InputError(f"split file {list_file} lists no images")
    else:
        ids = _ratio_split(sorted(masks), split, cfg.split_ratio, cfg.split_seed, folder)
    pairs = []
    for image_id in ids:
        if image_id not in images:
            raise InputError(
                f"image {image_id!r} listed for split {split!r} is not in {folder / 'JPEGImages'}"
            )
        if image_id not in masks:
            raise InputError(f"image {images[image_id]} has no mask {mask_dir / image_id}.png")
        pairs.append((images[image_id], masks[image_id]))
    return pairs


def _generic_pairs(folder: Path, split: str, cfg: DataConfig) -> list[tuple[Path, Path]]:
    """Pairs for ``images/`` + ``masks/``, from split subfolders when present, else by ratio."""
    image_root, mask_root = folder / "images", folder / "masks"
    split_dirs = sorted(p.name for p in image_root.iterdir() if p.is_dir())
    if split_dirs:
        if split not in split_dirs:
            raise InputError(
                f"split folder {image_root / split} does not exist (available splits: {split_dirs})"
            )
        if not (mask_root / split).is_dir():
            raise InputError(f"mask folder {mask_root / split} does not exist for {image_root / split}")
        image_root, mask_root = image_root / split, mask_root / split
        images = _images_by_stem(image_root, "image")
    else:
        images = _images_by_stem(image_root, "image")
        keep = _ratio_split(sorted(images), split, cfg.split_ratio, cfg.split_seed, folder)
        images = {stem: images[stem] for stem in keep}
    if not images:
        raise InputError(f"{image_root} holds no images for split {split!r}")
    return _pair(images, _images_by_stem(mask_root, "mask"), mask_root)


def _cityscapes_pairs(folder: Path, split: str) -> list[tuple[Path, Path]]:
    """Pairs for Cityscapes: each ``*_leftImg8bit.png`` under ``leftImg8bit/{split}/`` and its labelIds."""
    image_root = folder / "leftImg8bit" / split
    if not image_root.is_dir():
        available = sorted(p.name for p in (folder / "leftImg8bit").iterdir() if p.is_dir())
        raise InputError(f"split folder {image_root} does not exist (available splits: {available})")
    pairs = []
    for image in sorted(image_root.glob(f"*/*{_CITYSCAPES_IMAGE}.png")):
        stem = image.name[: -len(f"{_CITYSCAPES_IMAGE}.png")]
        mask = folder / "gtFine" / split / image.parent.name / f"{stem}{_CITYSCAPES_MASK}.png"
        if not mask.is_file():
            raise InputError(f"image {image} has no mask {mask}")
        pairs.append((image, mask))
    if not pairs:
        raise InputError(f"{image_root} holds no */*{_CITYSCAPES_IMAGE}.png images")
    return pairs
