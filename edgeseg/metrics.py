"""Segmentation metrics from a confusion matrix, in numpy only (the runtime uses them without torch)."""

from __future__ import annotations

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
