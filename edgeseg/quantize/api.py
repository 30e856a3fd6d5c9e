"""ONNX FP32 → INT8 or FP16 behind its accuracy gate: the one function ``edgeseg quantize``, ``edgeseg export
--int8/--fp16`` and the pipeline call."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from edgeseg.errors import InputError
from edgeseg.quantize import defaults

PRECISIONS = ("int8", "fp16")


def quantize_file(
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    precision: str = "int8",
    calib: str | os.PathLike | Any | None = None,
    calib_size: int = defaults.CALIB_SIZE,
    val: str | os.PathLike | Any | None = None,
    val_size: int = defaults.VAL_SIZE,
    max_drop: float = defaults.MAX_DROP,
    method: str = defaults.METHOD,
    per_channel: bool = True,
    reduce_range: bool | None = None,
    max_float_nodes: int = defaults.MAX_FLOAT_NODES,
    min_agreement: float = defaults.MIN_AGREEMENT,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Any:
    """Write the ``precision`` version of the FP32 model at ``model_path`` to ``out_path`` if it passes.

    INT8 (:func:`~edgeseg.quantize.int8.quantize_int8`) calibrates on ``calib`` (required; a dataset root or
    object) and measures the mIoU drop on ``val`` (default: ``calib``'s val split); FP16
    (:func:`~edgeseg.quantize.fp16.convert_fp16`) takes no calibration data and checks argmax agreement
    (``min_agreement``) and, with ``val``, the mIoU drop. Returns the report (``.summary()``, ``.to_dict()``).
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16":
        if calib is not None:
            raise InputError("--calib is for INT8 calibration; FP16 needs none (--val adds its mIoU check)")
        from edgeseg.quantize.fp16 import convert_fp16

        return convert_fp16(
            model_path, out_path, val=val, val_size=val_size, max_drop=max_drop, min_agreement=min_agreement,
            force=force, progress=progress,
        )  # fmt: skip
    if calib is None:
        raise InputError("INT8 needs calibration images (--calib DATA: a dataset folder or 'synthetic')")
    from edgeseg.quantize.int8 import quantize_int8

    return quantize_int8(
        model_path, out_path, calib=calib, calib_size=calib_size, val=val, val_size=val_size,
        max_drop=max_drop, method=method, per_channel=per_channel, reduce_range=reduce_range,
        max_float_nodes=max_float_nodes, force=force, progress=progress,
    )  # fmt: skip
