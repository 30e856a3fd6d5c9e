"""Metrics in numpy only (the runtime uses them without torch): segmentation metrics from a confusion
matrix; top-k accuracy of classification scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeseg.runtime.metadata import IGNORE_INDEX


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Confusion matrix (rows: target, columns: prediction) via one ``bincount``; ignore pixels dropped."""
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    target = np.asarray(target).reshape(-1).astype(np.int64)
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    idx = target[keep] * num_classes + pred[keep]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass
class SegMetrics:
    """mIoU, pixel accuracy and per-class IoU (fractions in [0, 1]).

    Classes absent from both target and prediction have IoU NaN and are left out of the mean.
    """

    miou: float
    pixel_acc: float
    per_class_iou: list[float]

    def to_dict(self, classes: list[str] | None = None) -> dict:
        names = classes or [str(i) for i in range(len(self.per_class_iou))]
        return {
            "miou": self.miou,
            "pixel_acc": self.pixel_acc,
            "per_class_iou": {
                n: (None if np.isnan(v) else v) for n, v in zip(names, self.per_class_iou, strict=True)
            },
        }


def metrics_from_confusion(cm: np.ndarray) -> SegMetrics:
    """Compute :class:`SegMetrics` from an accumulated confusion matrix."""
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    total = cm.sum()
    miou = float(np.nanmean(iou)) if np.any(union > 0) else 0.0
    return SegMetrics(
        miou=miou, pixel_acc=float(tp.sum() / total) if total else 0.0, per_class_iou=iou.tolist()
    )


def topk_hits(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """For each k, how many of the N samples have their label among the k highest of their K scores.

    ``scores`` N×K, ``labels`` N integers in [0, K). A k of K or more counts every sample. Ties are broken
    by class index (lower first), as ``np.argsort(-scores, kind="stable")`` orders them.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"expected scores N×K and N labels, got {scores.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), got {labels.min()}..{labels.max()}")
    order = np.argsort(-scores, axis=1, kind="stable")
    rank = np.argmax(order == labels[:, None], axis=1)  # position of the label in each row's ranking
    return {int(k): int((rank < k).sum()) for k in ks}


@dataclass
class ClassMetrics:
    """Top-1 and top-5 accuracy (fractions in [0, 1]) over ``images`` images."""

    top1: float
    top5: float
    images: int

    def to_dict(self) -> dict[str, float | int]:
        return {"top1": self.top1, "top5": self.top5, "images": self.images}


def class_metrics(hits: dict[int, int], images: int) -> ClassMetrics:
    """Top-1/top-5 accuracy from :func:`topk_hits` counts summed over batches."""
    n = max(images, 1)
    return ClassMetrics(top1=hits.get(1, 0) / n, top5=hits.get(5, 0) / n, images=images)
