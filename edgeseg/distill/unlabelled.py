"""Unlabelled images for distillation: more images for the teacher to label, beside the labelled batch.

With ``distill.unlabelled`` set, every training step appends ``distill.unlabelled_batch`` images without
masks to the labelled batch, before the batch augmentation and CutMix/MixUp, so the teacher and the student
see them exactly as they see the labelled ones. Their pixels carry the label :data:`UNLABELLED`: the label
loss skips them (:func:`for_label_loss`), the distillation terms use them (:func:`edgeseg.distill.losses.
valid_pixels` counts every pixel that is not ``ignore_index``). The number of steps per epoch stays that of
the labelled data.

The source is a folder of images (searched recursively, by suffix; each image fitted to the training crop as
the labelled ones are) or ``synthetic``: the recipe's synthetic generator, drawing scenes of its own split,
so none of them is a training or validation image. Which images a step gets is a function of
``(train.seed, step, rank)``: a resumed run draws the same ones, with no state to save.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgeseg.data.augment import fit_to_crop, resize_short_side
from edgeseg.data.config import SYNTHETIC, DataConfig
from edgeseg.data.datasets import read_image
from edgeseg.data.loader import collate
from edgeseg.errors import InputError
from edgeseg.runtime.files import images_in

UNLABELLED = -2
"""Mask value of the pixels of an unlabelled image. Not ``-1``: the batch augmentation shifts labels by one
and reads 0 as "no source pixel" (``edgeseg.data.augment.BatchAugment``)."""

SYNTHETIC_SPLIT = "unlabelled"
"""The synthetic generator's split that unlabelled scenes are drawn from (disjoint from train and val)."""


class UnlabelledImages:
    """The stream of unlabelled batches: ``stream(step, rank) -> (images float N×3×S×S in [0, 1], masks)``.

    ``masks`` is int64 N×S×S holding :data:`UNLABELLED` on image pixels and ``ignore_index`` where the crop
    was padded. ``source`` is a folder or ``"synthetic"``; ``count`` limits the images used (the first
    ``count`` of the folder's sorted files; the number of synthetic scenes, 0 = ``data.synthetic_train``).
    """

    def __init__(self, source: str, count: int, batch: int, data: DataConfig, seed: int) -> None:
        self.source = source
        self.batch = batch
        self.crop_size = int(data.crop_size)
        self.resize = data.resize
        self.ignore_index = data.ignore_index
        self.seed = seed
        self.files: list[Path] = []
        self.scenes = None
        if source == SYNTHETIC:
            if data.root != SYNTHETIC:
                raise InputError(
                    f"distill.unlabelled=synthetic draws from the built-in generator, but data.root is "
                    f"{data.root}; give a folder of unlabelled images instead"
                )
            from edgeseg.data.synthetic import SyntheticSegDataset

            self.scenes = SyntheticSegDataset(
                split=SYNTHETIC_SPLIT,
                num_samples=count or data.synthetic_train,
                size=data.synthetic_size,
                seed=data.synthetic_seed,
                variant=data.synthetic_variant,
                ignore_index=data.ignore_index,
            )
            self.size = len(self.scenes)
        else:
            folder = Path(source)
            if not folder.is_dir():
                raise InputError(f"distill.unlabelled: {folder} is not a folder of images (or 'synthetic')")
            self.files = images_in(folder)
            if not self.files:
                raise InputError(f"distill.unlabelled: no images found in {folder}")
            if count:
                self.files = self.files[:count]
            self.size = len(self.files)

    def describe(self) -> str:
        """One line for the run's log."""
        where = "synthetic scenes" if self.scenes is not None else f"images from {self.source}"
        return f"unlabelled: {self.size} {where}, {self.batch} per step"

    def _image(self, index: int) -> np.ndarray:
        if self.scenes is not None:
            return self.scenes[index][0]
        return read_image(self.files[index])

    def __call__(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, rank])
        images: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        for index in rng.integers(0, self.size, self.batch):
            image = self._image(int(index))
            mask = np.zeros(image.shape[:2], dtype=np.int64)
            if self.resize is not None:
                image, mask = resize_short_side(image, mask, self.resize)
            image, mask = fit_to_crop(image, mask, self.crop_size, rng, self.ignore_index)
            images.append(image)
            masks.append(np.where(mask == self.ignore_index, self.ignore_index, UNLABELLED))
        return collate(list(zip(images, masks, strict=True)))


def for_label_loss(masks: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``masks`` with :data:`UNLABELLED` pixels turned into ``ignore_index`` (what the label loss skips)."""
    return torch.where(masks == UNLABELLED, torch.full_like(masks, ignore_index), masks)
