"""The model files of the pipeline: ONNX exports behind the parity gate, and INT8 behind the accuracy gate.

Both steps are the library functions the CLI calls (``edgeseg.export.export_checkpoint``,
``edgeseg.quantize.quantize_file``); the pipeline hands them its own validation images (the recipe's data
settings, not the library defaults) and keeps the figures of their gates for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import GateFailed
from edgeseg.pipeline.config import ExportSettings, QuantizeSettings

Log = Callable[[str], None]
Sample = tuple[np.ndarray, np.ndarray]
PARITY_KEYS = ("passed", "max_abs_diff", "max_rel_diff", "agreement", "miou_torch", "miou_onnx", "miou_delta")


def validation_samples(dataset: Any, count: int) -> list[Sample]:
    """The first ``count`` (image, mask) pairs of a validation dataset, as ``edgeseg validate`` takes them."""
    return [dataset[i] for i in range(min(count, len(dataset)))]


def parity_summary(result: Any) -> dict[str, Any]:
    """The summary figures of a ``ValidationResult`` (no per-check rows)."""
    full = result.to_dict()
    return {key: full[key] for key in PARITY_KEYS} | {"failures": full["failures"]}


def export_model(
    checkpoint: str | Path,
    onnx_path: Path,
    samples: Sequence[Sample],
    settings: ExportSettings,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Export ``checkpoint`` to ``onnx_path`` (dynamic shapes, logits; ``settings`` may ask for in-graph
    preprocessing and coarse logits) and validate it on ``samples``.

    ``edgeseg export``'s own function (:func:`~edgeseg.export.export_checkpoint`): the checkpoint's classes,
    palette, normalization, data settings and hash go into the file's metadata. A failed parity gate raises
    ``ParityFailed`` and writes nothing.
    """
    from edgeseg.export import Tolerances, export_checkpoint

    options: dict[str, Any] = {}
    if settings.opset is not None:
        options["opset"] = settings.opset
    if settings.exporter is not None:
        options["exporter"] = settings.exporter
    tolerances = Tolerances(
        max_abs=settings.max_abs_diff,
        max_rel=None,
        min_agreement=settings.min_agreement,
        max_miou_delta=settings.max_miou_delta,
    )
    report = export_checkpoint(
        checkpoint,
        onnx_path,
        samples=samples,
        simplify=settings.simplify,
        preprocess=settings.preprocess,
        coarse=settings.coarse,
        tolerances=tolerances,
        force=force,
        **options,
    )
    return {
        "path": str(onnx_path),
        "checkpoint": str(checkpoint),
        "exporter": report.exporter,
        "opset": report.opset,
        "nodes": report.nodes_final,
        "preprocess": report.preprocess,
        "upsample": report.upsample,
        "simplifier": report.simplifier,
        "file_size": report.file_size,
        "val_images": len(samples),
        "parity": parity_summary(report.validation),
    }


def quantize_model(
    fp32_path: Path,
    int8_path: Path,
    calib_set: Any,
    val_set: Any,
    samples: Sequence[Sample],
    settings: QuantizeSettings,
    *,
    force: bool = False,
    log: Log | None = None,
) -> dict[str, Any]:
    """INT8 of ``fp32_path`` through the accuracy gate; the gate's verdict either way.

    Calibrates on ``calib_set`` (the training split) and measures the mIoU drop on ``val_set``. When the gate
    fails, nothing is written and the result says ``passed: false`` with the reason; other errors propagate.
    On success, the INT8 file is also compared with its FP32 model on ``samples`` (logit difference and
    argmax agreement) for the report's parity columns.
    """
    from edgeseg.export import validate_onnx
    from edgeseg.export.tolerances import NO_LIMITS
    from edgeseg.quantize.api import quantize_file

    try:
        report = quantize_file(
            fp32_path,
            int8_path,
            precision="int8",
            calib=calib_set,
            calib_size=settings.calib_size,
            val=val_set,
            val_size=settings.val_size,
            max_drop=settings.max_drop,
            method=settings.method,
            per_channel=settings.per_channel,
            max_float_nodes=settings.max_float_nodes,
            force=force,
            progress=log,
        )
    except GateFailed as err:
        return {"passed": False, "message": str(err), "max_drop": settings.max_drop}
    if log is not None:
        log(report.summary())
    parity = validate_onnx(int8_path, fp32_path, samples=samples, tolerances=NO_LIMITS)
    return {
        "passed": True,
        "path": str(int8_path),
        "reference": str(fp32_path),
        "gate": report.to_dict(),
        "parity": parity_summary(parity),
    }
