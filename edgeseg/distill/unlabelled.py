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

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.data.augment import fit_to_crop, resize_short_side
from edgeseg.data.config import SYNTHETIC, DataConfig
from edgeseg.data.datasets import SegDataset, read_image
from edgeseg.data.loader import collate, normalize
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

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` of the source (uint8 H×W×3 RGB), as stored."""
        if self.scenes is not None:
            return self.scenes[index][0]
        return read_image(self.files[index])

    def __call__(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, rank])
        images: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        for index in rng.integers(0, self.size, self.batch):
            image = self.image(int(index))
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


class PseudoLabelled(SegDataset):
    """The images of ``source`` with the teacher's labels: a dataset like the labelled training set.

    ``teacher`` maps a batch normalized with ``mean``/``std`` to class scores N×C×h×w (a checkpoint's model
    or an :class:`~edgeseg.distill.onnx_teacher.OnnxTeacher`); scores of another size are resized
    (bilinear) to the image's before the argmax. Pixels where the teacher's softmax probability of its class
    is below ``threshold`` get ``ignore_index`` (the label loss skips them; 0 keeps every pixel). Every image
    is labelled here, on ``device``, in batches of up to ``batch`` images of one size;
    ``classes``/``palette``/``ignore_index`` are the training set's.
    """

    layout = "teacher-labelled"

    def __init__(
        self,
        source: UnlabelledImages,
        teacher: nn.Module,
        *,
        classes: Sequence[str],
        palette: Sequence[Sequence[int]],
        mean: Sequence[float],
        std: Sequence[float],
        ignore_index: int,
        threshold: float = 0.0,
        device: torch.device | str = "cpu",
        batch: int = 16,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.root, self.split = source.source, SYNTHETIC_SPLIT if source.scenes is not None else "unlabelled"
        self.classes, self.palette = list(classes), [list(c) for c in palette]
        self.ignore_index = ignore_index
        self.fixed_size = tuple(source.scenes.fixed_size) if source.scenes is not None else None
        self.threshold = float(threshold)
        started = time.perf_counter()
        self.labels = self._label(teacher, mean, std, torch.device(device), batch)
        if log is not None:
            seconds = time.perf_counter() - started
            kept = ""
            if self.threshold > 0:
                share = self.kept_share()
                kept = f"; {share:.1%} of their pixels at confidence >= {self.threshold:g}, the rest ignored"
            log(f"pseudo labels: {len(self)} images labelled by the teacher in {seconds:.1f} s{kept}")

    def __len__(self) -> int:
        return self.source.size

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        index = self._index(index)
        return self._resized(index), self.labels[index].astype(np.int64)

    def describe(self) -> str:
        """One line for logs: how many images, from where, labelled by the teacher."""
        where = "synthetic scenes" if self.source.scenes is not None else f"images from {self.root}"
        return f"{len(self)} {where} labelled by the teacher"

    def kept_share(self) -> float:
        """The share of labelled pixels (not ``ignore_index``) over all the images."""
        kept = sum(int((labels != self.ignore_index).sum()) for labels in self.labels)
        return kept / max(1, sum(labels.size for labels in self.labels))

    def _resized(self, index: int) -> np.ndarray:
        image = self.source.image(index)
        if self.source.resize is not None:
            image = resize_short_side(image, np.zeros(image.shape[:2], np.int64), self.source.resize)[0]
        return image

    @torch.no_grad()
    def _label(
        self,
        teacher: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
        batch: int,
    ) -> list[np.ndarray]:
        teacher.eval().to(device)
        small = len(self.classes) <= 256 and 0 <= self.ignore_index < 256
        dtype = np.uint8 if small else np.int32
        labels: list[np.ndarray] = []
        pending: list[np.ndarray] = []

        def flush() -> None:
            x = torch.from_numpy(np.stack(pending)).to(device).permute(0, 3, 1, 2).float() / 255.0
            scores = teacher(normalize(x, mean, std))
            if scores.shape[-2:] != x.shape[-2:]:
                scores = F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)
            if self.threshold > 0:
                confidence, label = scores.float().softmax(1).max(1)
                label[confidence < self.threshold] = self.ignore_index
            else:
                label = scores.argmax(1)
            labels.extend(label.cpu().numpy().astype(dtype))
            pending.clear()

        for index in range(self.source.size):
            image = self._resized(index)
            if pending and (len(pending) == batch or pending[0].shape != image.shape):
                flush()
            pending.append(image)
        if pending:
            flush()
        return labels
