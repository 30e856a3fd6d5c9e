"""Image-classification datasets, for pretraining backbones (``edgeseg pretrain``).

A classification sample is ``(image uint8 H×W×3, label map int16 H×W)`` where the label map holds the
image's class at every pixel. So the segmentation data path carries it unchanged: the loaders' resizing and
crops, kornia's geometric augmentation (pixels from outside the image become :data:`NO_LABEL`) and CutMix /
MixUp (a pasted box brings its own class): :func:`edgeseg.data.mix.soft_targets` turns the mixed maps into
soft labels, each class weighted by its share of the labelled pixels.

Layouts (:func:`build_classification_dataset`):

``imagefolder``  torchvision's ImageFolder: ``ROOT/<split>/<class>/*.jpg`` (any image extension); classes are
                 the sub-folder names, sorted. An empty class folder, a single class, or a missing split
                 folder is an :class:`InputError` naming the folder; an unreadable image one naming the file.
``synthetic``    object crops of the built-in synthetic scenes (:class:`SyntheticObjectDataset`).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from edgeseg.data.classes import voc_palette
from edgeseg.data.config import SYNTHETIC, DataConfig
from edgeseg.data.datasets import IMAGE_EXTENSIONS, SegDataset, read_image
from edgeseg.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, generate_object
from edgeseg.errors import InputError

NO_LABEL = -1
"""The label-map value of pixels without a class (padding, warps); no class index can collide with it."""


class ClassificationDataset(SegDataset):
    """A classification dataset in the segmentation interface: ``labels[i]`` is sample ``i``'s class, and
    ``__getitem__`` returns its image with a label map filled with it. ``ignore_index`` is :data:`NO_LABEL`.
    """

    labels: list[int]
    ignore_index = NO_LABEL

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        index = self._index(index)
        image = self.image(index)
        return image, np.full(image.shape[:2], self.labels[index], dtype=np.int16)

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 H×W×3 RGB."""
        raise NotImplementedError


class ImageFolderDataset(ClassificationDataset):
    """``root/split/<class>/<image>``: every image file in a class folder is one sample of that class."""

    def __init__(self, root: str | Path, split: str) -> None:
        folder = Path(root) / split
        if not Path(root).is_dir():
            raise InputError(f"dataset folder {root} does not exist")
        if not folder.is_dir():
            raise InputError(f"{folder}: no '{split}' folder (expected {root}/{split}/<class>/<image>)")
        class_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
        if len(class_dirs) < 2:
            found = f"only {class_dirs[0].name!r}" if class_dirs else "none"
            raise InputError(f"{folder}: a classification set needs at least 2 class folders, found {found}")
        self.files: list[Path] = []
        self.labels = []
        for label, class_dir in enumerate(class_dirs):
            files = sorted(
                p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not files:
                raise InputError(f"class folder {class_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            self.files += files
            self.labels += [label] * len(files)
        self.root = str(root)
        self.split = split
        self.layout = "imagefolder"
        self.classes = [p.name for p in class_dirs]
        self.palette = voc_palette(len(self.classes))

    def image(self, index: int) -> np.ndarray:
        return read_image(self.files[index])


class SyntheticObjectDataset(ClassificationDataset):
    """Object crops of the built-in synthetic scenes: the 7 object classes, balanced (sample ``i`` is class
    ``i mod 7``), each crop drawn from ``(seed, split, i)`` by :func:`edgeseg.data.synthetic.generate_object`.

    The crops come from a random stream of their own (not the scenes'), so no crop is cut from an image of
    the synthetic segmentation set.
    """

    def __init__(self, split: str, num_samples: int, size: int, seed: int) -> None:
        if num_samples < 1:
            raise InputError(f"synthetic split {split!r} needs at least one sample, got {num_samples}")
        if size < 32:
            raise InputError(f"synthetic image size must be at least 32 pixels, got {size}")
        self.root = SYNTHETIC
        self.split = split
        self.layout = "synthetic objects"
        self.classes = list(SYNTHETIC_CLASSES[1:])
        self.palette = [list(c) for c in SYNTHETIC_PALETTE[1:]]
        self.fixed_size = (size, size)
        self.seed = seed
        self.labels = [i % len(self.classes) for i in range(num_samples)]
        self._split_key = zlib.crc32(f"objects/{split}".encode())

    def image(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self._split_key, index])
        return generate_object(rng, self.labels[index] + 1, self.fixed_size[0])


def build_classification_dataset(root: str | Path, split: str, cfg: DataConfig | None = None) -> SegDataset:
    """The classification dataset of ``split`` at ``root``: ``"synthetic"`` (object crops, sized and counted
    by ``cfg``'s ``synthetic_*`` settings) or an ImageFolder tree. ``cfg.num_classes``, when set, must agree
    with the classes found."""
    cfg = cfg or DataConfig()
    if str(root) == SYNTHETIC:
        count = cfg.synthetic_train if split == cfg.train_split else cfg.synthetic_val
        dataset: ClassificationDataset = SyntheticObjectDataset(
            split, count, cfg.synthetic_size, cfg.synthetic_seed
        )
    else:
        dataset = ImageFolderDataset(root, split)
    if cfg.num_classes is not None and cfg.num_classes != dataset.num_classes:
        raise InputError(
            f"data.num_classes is {cfg.num_classes} but {dataset.root} (split {split!r}) has "
            f"{dataset.num_classes} classes"
        )
    return dataset
