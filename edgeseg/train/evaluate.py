"""Evaluation: predictions → confusion matrix (``edgeseg.metrics``) → mIoU, pixel accuracy, per-class IoU.

The same numpy confusion matrix serves PyTorch models and ONNX files (through ``edgeseg.runtime.Segmenter``),
so their figures compare line for line. Under torchrun each rank evaluates its own share of the images and the
matrices are summed across ranks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeseg.checkpoint import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.errors import InputError
from edgeseg.metrics import SegMetrics, confusion_matrix, metrics_from_confusion
from edgeseg.train.distributed import DistContext, all_reduce_sum


def autocast(device: torch.device, enabled: bool) -> torch.autocast | nullcontext:
    """Mixed precision for ``device``: bf16 on CPU, fp16 on CUDA; a no-op when not ``enabled``."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if device.type == "cpu" else torch.float16)


def to_batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 N×H×W×3 (numpy or tensor) → float N×3×H×W in [0, 1]; float N×3×H×W passes through."""
    t = torch.as_tensor(images)
    if t.dtype == torch.uint8:
        t = t.permute(0, 3, 1, 2).float().div_(255.0)
    return t


def val_loader(
    dataset: torch.utils.data.Dataset, batch_size: int | None = None, ctx: DistContext | None = None,
    workers: int = 0,
) -> torch.utils.data.DataLoader:
    """Loader over this rank's share of ``dataset`` (every ``world_size``-th image, no padding duplicates).

    ``batch_size`` None: 8 when all images share one size (``dataset.fixed_size``), else 1.
    """
    from edgeseg.data import build_loader

    ctx = ctx or DistContext()
    if batch_size is None:
        batch_size = 8 if getattr(dataset, "fixed_size", None) else 1
    shard = list(range(ctx.rank, len(dataset), ctx.world_size))
    return build_loader(dataset, batch_size, train=False, num_workers=workers, sampler=shard)


@torch.no_grad()
def confusion(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    num_classes: int,
    ignore_index: int = 255,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: torch.device | None = None,
    amp: bool = False,
    channels_last: bool = False,
) -> np.ndarray:
    """Confusion matrix (int64, rows: target) of ``model``'s argmax over ``(images, masks)`` batches.

    Images are float N×3×H×W in [0, 1] or uint8 N×H×W×3; normalization with ``mean``/``std`` happens here.
    The model is put in eval mode and restored to its previous mode afterwards.
    """
    from edgeseg.data import normalize

    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    try:
        for images, masks in batches:
            x = normalize(to_batch(images).to(device), mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                logits = model(x)
            pred = logits.argmax(1).cpu().numpy()
            cm += confusion_matrix(pred, torch.as_tensor(masks).numpy(), num_classes, ignore_index)
    finally:
        model.train(was_training)
    return cm


def evaluate(
    model: nn.Module,
    data: torch.utils.data.Dataset | Iterable,
    *,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    batch_size: int | None = None,
    device: torch.device | None = None,
    amp: bool = False,
    channels_last: bool = False,
    ctx: DistContext | None = None,
) -> SegMetrics:
    """mIoU, pixel accuracy and per-class IoU of ``model`` on a dataset or an iterable of batches.

    A dataset (the ``edgeseg.data`` contract) supplies ``num_classes`` and ``ignore_index`` itself; under
    torchrun (``ctx``) each rank takes its share of it and the confusion matrices are summed, so every rank
    returns the metrics of the whole dataset. An iterable of ``(images, masks)`` batches needs
    ``num_classes``.
    """
    ctx = ctx or DistContext()
    if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "num_classes"):
        num_classes = num_classes or data.num_classes
        ignore_index = data.ignore_index if ignore_index is None else ignore_index
        data = val_loader(data, batch_size, ctx)
    if num_classes is None:
        raise ValueError("evaluate() needs num_classes when given batches rather than a dataset")
    cm = confusion(
        model, data, num_classes=num_classes, ignore_index=255 if ignore_index is None else ignore_index,
        mean=mean, std=std, device=device, amp=amp, channels_last=channels_last,
    )
    if ctx.distributed:
        total = all_reduce_sum(torch.from_numpy(cm).to(ctx.device), ctx)
        cm = total.cpu().numpy()
    return metrics_from_confusion(cm)


def evaluate_onnx(path: str | Path, dataset: torch.utils.data.Dataset, provider: str = "auto") -> SegMetrics:
    """Metrics of an exported ONNX model through ``edgeseg.runtime.Segmenter``, image by image."""
    from edgeseg.runtime import Segmenter

    segmenter = Segmenter(str(path), provider=provider)
    classes = list(getattr(segmenter, "classes", []) or [])
    if classes and len(classes) != dataset.num_classes:
        raise InputError(
            f"{path} predicts {len(classes)} classes but the dataset at {dataset.root} has "
            f"{dataset.num_classes}"
        )
    cm = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    for i in range(len(dataset)):
        image, mask = dataset[i]
        pred = segmenter.predict(image)
        cm += confusion_matrix(pred, mask, dataset.num_classes, dataset.ignore_index)
    return metrics_from_confusion(cm)
