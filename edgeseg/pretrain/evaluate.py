"""Top-1/top-5 accuracy of a classifier on a classification dataset, and of a pretrain checkpoint file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeseg.data.config import DataConfig
from edgeseg.errors import InputError
from edgeseg.metrics import ClassMetrics, class_metrics, topk_hits
from edgeseg.pretrain.objective import class_labels
from edgeseg.runtime.metadata import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.train.distributed import DistContext, all_reduce_sum
from edgeseg.train.evaluate import autocast, to_batch, val_loader

TOPK = (1, 5)


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    data_cfg: DataConfig | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: torch.device | None = None,
    amp: bool = False,
    channels_last: bool = False,
    ctx: DistContext | None = None,
) -> ClassMetrics:
    """Top-1/top-5 accuracy of ``model`` (logits N×K) on a classification dataset's validation loader.

    Under torchrun (``ctx``) each rank scores its share and the counts are summed, so every rank returns the
    figures of the whole dataset. The model's train/eval mode is restored afterwards.
    """
    from edgeseg.data import normalize

    ctx = ctx or DistContext()
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    hits = np.zeros(len(TOPK), dtype=np.int64)
    images = 0
    try:
        for batch, maps in val_loader(dataset, data_cfg, ctx):
            x = normalize(to_batch(batch).to(device), mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                logits = model(x)
            counts = topk_hits(logits.float().cpu().numpy(), class_labels(maps).numpy(), TOPK)
            hits += np.array([counts[k] for k in TOPK])
            images += len(maps)
    finally:
        model.train(was_training)
    totals = torch.tensor([*hits.tolist(), images], dtype=torch.float64, device=ctx.device)
    totals = all_reduce_sum(totals, ctx).cpu().long().tolist()
    return class_metrics(dict(zip(TOPK, totals[:-1], strict=True)), totals[-1])


def evaluate_classifier_file(
    path: str | Path,
    data: str | None = None,
    split: str = "val",
    *,
    overrides: Sequence[str] = (),
    device: str = "auto",
    log: Callable[[str], None] | None = None,
    checkpoint: dict | None = None,
) -> tuple[ClassMetrics, list[str]]:
    """Top-1/top-5 of a pretrain checkpoint on ``split`` of its own data (``data`` replaces the root, a
    folder or ``synthetic``; ``overrides`` adjust the data settings); returns (metrics, class names).
    ``checkpoint``: the checkpoint at ``path`` when the caller has loaded it already."""
    from edgeseg.checkpoint import load_checkpoint, model_from_checkpoint
    from edgeseg.config import data_settings
    from edgeseg.data.classification import build_classification_dataset
    from edgeseg.models import is_classifier
    from edgeseg.train.distributed import resolve_device

    p = Path(path)
    ckpt = checkpoint if checkpoint is not None else load_checkpoint(p)
    if not is_classifier(ckpt["model"]):
        raise InputError(f"{p} is a segmentation checkpoint, not a pretrained classifier")
    base = (ckpt.get("recipe") or {}).get("data") or None
    cfg = data_settings(overrides, base, root=data, source=f"{p} data settings")
    dataset = build_classification_dataset(cfg.root, split, cfg)
    classes = list(ckpt["classes"])
    if classes != list(dataset.classes):
        raise InputError(
            f"{p} was trained on {len(classes)} classes ({', '.join(classes[:3])}, ...) but {dataset.root} "
            f"has {dataset.num_classes} ({', '.join(dataset.classes[:3])}, ...)"
        )
    if log is not None:
        log(f"evaluated on {dataset.describe()}")
    model = model_from_checkpoint(ckpt).to(resolve_device(device))
    metrics = evaluate_classifier(model, dataset, data_cfg=cfg, mean=ckpt["mean"], std=ckpt["std"])
    return metrics, classes
