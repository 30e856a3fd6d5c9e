"""Evaluation: predictions → confusion matrix (``edgeseg.metrics``) → mIoU, pixel accuracy, per-class IoU.

The same numpy confusion matrix serves PyTorch models and ONNX files (through ``edgeseg.runtime.Segmenter``),
so their figures compare line for line. Under torchrun each rank evaluates its own share of the images and the
matrices are summed across ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeseg.data.config import SYNTHETIC, DataConfig
from edgeseg.errors import InputError
from edgeseg.metrics import SegMetrics, confusion_matrix, metrics_from_confusion
from edgeseg.runtime.metadata import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD
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
    dataset: torch.utils.data.Dataset, cfg: DataConfig | None = None, ctx: DistContext | None = None
) -> torch.utils.data.DataLoader:
    """Validation loader (``edgeseg.data.build_val_loader``) over this rank's share of ``dataset``.

    Each rank takes every ``world_size``-th image, with no padding duplicates, so summing the ranks'
    confusion matrices counts every image once. ``cfg`` gives the batch size and resizing (defaults if
    None).
    """
    from edgeseg.data import DataConfig, build_val_loader

    ctx = ctx or DistContext()
    shard = list(range(ctx.rank, len(dataset), ctx.world_size))
    return build_val_loader(dataset, cfg or DataConfig(), sampler=shard)


@torch.no_grad()
def confusion(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
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
    data_cfg: DataConfig | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: torch.device | None = None,
    amp: bool = False,
    channels_last: bool = False,
    ctx: DistContext | None = None,
) -> SegMetrics:
    """mIoU, pixel accuracy and per-class IoU of ``model`` on a dataset or an iterable of batches.

    A dataset (the ``edgeseg.data`` contract) supplies ``num_classes`` and ``ignore_index`` itself and is read
    through :func:`val_loader` with ``data_cfg`` (batch size, resizing); under
    torchrun (``ctx``) each rank takes its share of it and the confusion matrices are summed, so every rank
    returns the metrics of the whole dataset. An iterable of ``(images, masks)`` batches needs
    ``num_classes``.
    """
    ctx = ctx or DistContext()
    if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "num_classes"):
        num_classes = num_classes or data.num_classes
        ignore_index = data.ignore_index if ignore_index is None else ignore_index
        data = val_loader(data, data_cfg, ctx)
    if num_classes is None:
        raise ValueError("evaluate() needs num_classes when given batches rather than a dataset")
    ignore = IGNORE_INDEX if ignore_index is None else ignore_index
    cm = confusion(
        model,
        data,
        num_classes=num_classes,
        ignore_index=ignore,
        mean=mean,
        std=std,
        device=device,
        amp=amp,
        channels_last=channels_last,
    )
    if ctx.distributed:
        total = all_reduce_sum(torch.from_numpy(cm).to(ctx.device), ctx)
        cm = total.cpu().numpy()
    return metrics_from_confusion(cm)


def evaluate_onnx(
    path: str | Path,
    dataset: torch.utils.data.Dataset,
    data_cfg: DataConfig | None = None,
    provider: str = "auto",
) -> SegMetrics:
    """Metrics of an exported ONNX model through ``edgeseg.runtime.Segmenter``, image by image.

    Images come from the same validation loader as :func:`evaluate` (so resizing matches) and go to
    ``Segmenter.predict`` as uint8 RGB, exactly as an application would pass them.
    """
    from edgeseg.runtime import Segmenter

    segmenter = Segmenter(str(path), provider=provider)
    classes = list(getattr(segmenter, "classes", []) or [])
    if classes and len(classes) != dataset.num_classes:
        raise InputError(
            f"{path} predicts {len(classes)} classes but the dataset at {dataset.root} has "
            f"{dataset.num_classes}"
        )
    cm = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    for images, masks in val_loader(dataset, data_cfg):
        pixels = images.mul(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for image, mask in zip(pixels, masks.numpy(), strict=True):
            pred = segmenter.predict(np.ascontiguousarray(image))
            cm += confusion_matrix(pred, mask, dataset.num_classes, dataset.ignore_index)
    return metrics_from_confusion(cm)


def data_summary(cfg: DataConfig) -> str:
    """The data settings that decide which validation images are read, as ``key=value`` pairs."""
    keys = ["val_split", "resize"]
    if cfg.root == SYNTHETIC:
        keys += ["synthetic_size", "synthetic_val", "synthetic_seed"]
    else:
        keys += ["split_ratio", "split_seed"]
    return ", ".join(f"{key}={getattr(cfg, key)}" for key in keys)


def evaluate_file(
    path: str | Path,
    data: str | None = None,
    split: str = "val",
    *,
    overrides: Sequence[str] = (),
    device: str = "auto",
    provider: str = "auto",
    log: Callable[[str], None] | None = None,
    checkpoint: dict | None = None,
) -> tuple[SegMetrics, list[str]]:
    """Evaluate a checkpoint (``.pt``) or an exported model (``.onnx``); return (metrics, class names).

    A model brings the data settings it was trained and evaluated with (a checkpoint's recipe ``data``
    section, an ONNX file's ``data`` metadata), so the same split is read as in training and in the
    pipeline's report; ``data`` replaces the root (a folder or ``synthetic``) and ``overrides``
    (``data.key=value``) adjust the rest. A file without data settings (from another tool) needs ``data``
    and gets the defaults apart from ``overrides``. ``log`` hears one line saying what was evaluated on.
    ``checkpoint``: the checkpoint at ``path`` when the caller has loaded it already.
    """
    from edgeseg.checkpoint import load_checkpoint, model_from_checkpoint
    from edgeseg.config import data_settings
    from edgeseg.data import build_dataset
    from edgeseg.train.distributed import resolve_device

    p = Path(path)
    is_onnx = p.suffix.lower() == ".onnx"
    if is_onnx:
        from edgeseg.runtime.model_io import inspect_model

        if not p.is_file():
            raise InputError(f"model not found: {p}")
        base = inspect_model(str(p)).metadata.data or None
        if data is None and base is None:
            raise InputError(f"{p} carries no data settings: pass --data PATH|synthetic to say what to use")
        ckpt: dict = {}
    else:
        ckpt = checkpoint if checkpoint is not None else load_checkpoint(p)
        base = (ckpt.get("recipe") or {}).get("data") or None
    cfg = data_settings(overrides, base, root=data, source=f"{p} data settings")
    dataset = build_dataset(cfg.root, split, cfg)
    if log is not None:
        origin = "the model's own" if base is not None else "the defaults"
        changed = " with --set " + " ".join(overrides) if overrides else ""
        log(f"evaluated on {dataset.describe()}; data settings: {origin}{changed} ({data_summary(cfg)})")
    if is_onnx:
        return evaluate_onnx(p, dataset, cfg, provider), list(dataset.classes)
    classes = list(ckpt["classes"])
    if len(classes) != dataset.num_classes:
        raise InputError(
            f"{p} was trained on {len(classes)} classes but the data at {cfg.root} has {dataset.num_classes}"
        )
    model = model_from_checkpoint(ckpt).to(resolve_device(device))
    metrics = evaluate(model, dataset, data_cfg=cfg, mean=ckpt["mean"], std=ckpt["std"])
    return metrics, classes
