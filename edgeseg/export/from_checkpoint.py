"""Export and validation starting from an edgeseg checkpoint: the library functions the CLI and the pipeline
call (``edgeseg export``/``validate``, the pipeline's export stage).

The checkpoint says everything its ONNX file must carry: classes, palette, normalization, ignore index, and
the data settings it was trained and evaluated with (its recipe's ``data`` section), which also decide the
validation images read from ``data`` when no other settings are given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeseg.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint
from edgeseg.errors import InputError
from edgeseg.export.api import ExportReport, to_onnx
from edgeseg.export.tolerances import DEFAULT_MAX_IMAGES, Tolerances
from edgeseg.export.torch_export import DEFAULT_EXPORTER, DEFAULT_OPSET, check_opset
from edgeseg.fileio import check_writable

Sample = tuple[np.ndarray, np.ndarray]


def load_samples(
    data: str | os.PathLike,
    limit: int = DEFAULT_MAX_IMAGES,
    split: str = "val",
    num_classes: int | None = None,
    overrides: Sequence[str] = (),
    base: dict[str, Any] | None = None,
) -> list[Sample]:
    """The first ``limit`` (image, mask) pairs of ``split`` of a dataset folder or ``"synthetic"``.

    ``base`` (a model's data settings) with ``overrides`` (``data.key=value``) applied decide how the data is
    read, as ``edgeseg eval`` does (e.g. the synthetic generator's image size). With ``num_classes``, a
    dataset with another number of classes is refused (its mIoU would be meaningless for the model).
    """
    from edgeseg.config import data_settings
    from edgeseg.data import build_dataset

    if limit < 1:
        raise InputError(f"the number of validation images must be at least 1, got {limit}")
    root = data if str(data) == "synthetic" else Path(data)
    dataset = build_dataset(root, split, data_settings(overrides, base, root=str(root)))
    if len(dataset) == 0:
        raise InputError(f"{data}: the {split!r} split has no images")
    if num_classes is not None and dataset.num_classes != num_classes:
        raise InputError(f"{data} has {dataset.num_classes} classes but the model predicts {num_classes}")
    return [dataset[i] for i in range(min(limit, len(dataset)))]


def checkpoint_metadata(ckpt: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """Metadata fields a checkpoint provides: classes, palette, normalization, ignore index, data settings,
    source hash."""
    return {
        "classes": list(ckpt["classes"]),
        "palette": [list(c) for c in ckpt["palette"]],
        "mean": list(ckpt["mean"]),
        "std": list(ckpt["std"]),
        "ignore_index": int(ckpt["ignore_index"]),
        "data": dict((ckpt.get("recipe") or {}).get("data") or {}),
        "checkpoint_sha256": file_sha256(path),
    }


def model_and_metadata(checkpoint: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint's model (eval mode) and its metadata fields; InputError for bad files."""
    from edgeseg.models import is_classifier

    ckpt = load_checkpoint(checkpoint)
    if is_classifier(ckpt["model"]):
        raise InputError(
            f"{checkpoint} is a pretrained classifier (edgeseg pretrain), not a segmentation model: use it "
            "as model.pretrained of a segmentation recipe"
        )
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
    samples: Sequence[Sample] | None = None,
    **options: Any,
) -> ExportReport:
    """Export a checkpoint's model with :func:`to_onnx` and the checkpoint's metadata.

    ``samples`` ((image, mask) pairs), or else ``data`` (a dataset folder or ``"synthetic"``, read with the
    checkpoint's data settings), add real-image and mIoU checks on the first ``max_images`` validation
    images; ``options`` go to :func:`to_onnx` (opset, exporter, output, tolerances, ...). The output path is
    checked before anything is loaded.
    """
    check_writable(onnx_path, bool(options.get("force", False)))
    check_opset(options.get("opset", DEFAULT_OPSET), options.get("exporter", DEFAULT_EXPORTER))
    model, meta = model_and_metadata(checkpoint)
    if samples is None and data is not None and options.get("validate", True):
        samples = load_samples(data, max_images, num_classes=len(meta["classes"]), base=meta["data"])
    return to_onnx(model, onnx_path, metadata=meta, samples=samples, **options)


def validate_checkpoint(
    onnx_path: str | os.PathLike,
    checkpoint: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    max_images: int = DEFAULT_MAX_IMAGES,
    overrides: Sequence[str] = (),
    tolerances: Tolerances | None = None,
    log: Callable[[str], None] | None = None,
    runtimes: Sequence[str] = ("onnxruntime",),
) -> Any:
    """The parity gate alone: an ONNX file against the checkpoint it was exported from, in each of
    ``runtimes`` (``edgeseg.export.runtimes.RUNTIMES``).

    The PyTorch side is wrapped as the file's metadata says; with ``data``, the first ``max_images``
    validation images (read with the checkpoint's data settings and ``overrides``) add the real-image and
    mIoU checks. Returns the :class:`~edgeseg.export.crosscheck.CrossCheck` (``passed``, ``checked_in``,
    each runtime's :class:`~edgeseg.export.validate.ValidationResult`); ``log`` hears a note when the file
    records another source checkpoint.
    """
    from edgeseg.export.crosscheck import validate_in_runtimes
    from edgeseg.export.info import load_onnx
    from edgeseg.export.metadata import read_metadata
    from edgeseg.runtime.model_io import class_count

    proto = load_onnx(Path(onnx_path))
    meta = read_metadata(proto)
    torch_model, ckpt_meta = model_and_metadata(checkpoint)
    other_source = meta.checkpoint_sha256 and meta.checkpoint_sha256 != ckpt_meta["checkpoint_sha256"]
    if log is not None and other_source:
        log(f"note: {onnx_path} was exported from another checkpoint than {checkpoint}")
    num_classes = class_count(meta) or len(ckpt_meta["classes"])
    samples = None
    if data is not None:
        samples = load_samples(
            data, max_images, num_classes=num_classes, overrides=overrides, base=ckpt_meta["data"]
        )
    return validate_in_runtimes(
        proto,
        torch_model,
        runtimes,
        metadata=meta,
        samples=samples,
        num_classes=num_classes,
        tolerances=tolerances,
    )
