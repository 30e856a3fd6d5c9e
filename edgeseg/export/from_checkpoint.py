"""Export and validation starting from an edgeseg checkpoint: what the CLI commands call.

``export_checkpoint`` is the one function behind ``edgeseg export``; other steps (INT8, FP16) call it to
get a validated fp32 model first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeseg.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint
from edgeseg.errors import InputError
from edgeseg.export.api import ExportReport, to_onnx
from edgeseg.export.torch_export import DEFAULT_EXPORTER, DEFAULT_OPSET, check_opset
from edgeseg.fileio import check_writable

DEFAULT_MAX_IMAGES = 8


def load_samples(
    data: str | os.PathLike,
    limit: int = DEFAULT_MAX_IMAGES,
    split: str = "val",
    num_classes: int | None = None,
    overrides: Sequence[str] = (),
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``limit`` (image, mask) pairs of ``split`` of a dataset folder or ``"synthetic"``.

    ``overrides`` (``data.key=value``) adjust the data settings, as ``edgeseg eval --set`` does (e.g. the
    synthetic generator's image size). With ``num_classes``, a dataset with another number of classes is
    refused (its mIoU would be meaningless for the model).
    """
    from edgeseg.config import data_settings
    from edgeseg.data import build_dataset

    if limit < 1:
        raise InputError(f"the number of validation images must be at least 1, got {limit}")
    root = data if str(data) == "synthetic" else Path(data)
    dataset = build_dataset(root, split, data_settings(overrides, root=str(root)))
    if len(dataset) == 0:
        raise InputError(f"{data}: the {split!r} split has no images")
    if num_classes is not None and dataset.num_classes != num_classes:
        raise InputError(f"{data} has {dataset.num_classes} classes but the model predicts {num_classes}")
    return [dataset[i] for i in range(min(limit, len(dataset)))]


def checkpoint_metadata(ckpt: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """Metadata fields a checkpoint provides: classes, palette, normalization, ignore index, source hash."""
    return {
        "classes": list(ckpt["classes"]),
        "palette": [list(c) for c in ckpt["palette"]],
        "mean": list(ckpt["mean"]),
        "std": list(ckpt["std"]),
        "ignore_index": int(ckpt["ignore_index"]),
        "checkpoint_sha256": file_sha256(path),
    }


def model_and_metadata(checkpoint: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint's model (eval mode) and its metadata fields; InputError for bad files."""
    ckpt = load_checkpoint(checkpoint)
    try:
        model = model_from_checkpoint(ckpt)
    except (KeyError, RuntimeError, ValueError) as err:
        raise InputError(f"{checkpoint}: cannot rebuild the model: {err}") from err
    return model, checkpoint_metadata(ckpt, checkpoint)


def export_checkpoint(
    checkpoint: str | os.PathLike,
    onnx_path: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    max_images: int = DEFAULT_MAX_IMAGES,
    **options: Any,
) -> ExportReport:
    """Export a checkpoint's model with :func:`to_onnx` and the checkpoint's metadata.

    ``data`` (a dataset folder or ``"synthetic"``) adds real-image and mIoU checks on the first
    ``max_images`` validation images; ``options`` go to :func:`to_onnx` (opset, exporter, output, ...).
    The output path is checked before anything is loaded.
    """
    check_writable(onnx_path, bool(options.get("force", False)))
    check_opset(options.get("opset", DEFAULT_OPSET), options.get("exporter", DEFAULT_EXPORTER))
    model, meta = model_and_metadata(checkpoint)
    samples = None
    if data is not None and options.get("validate", True):
        samples = load_samples(data, max_images, num_classes=len(meta["classes"]))
    return to_onnx(
        model, onnx_path, metadata=meta, mean=meta["mean"], std=meta["std"], samples=samples, **options
    )
