"""INT8 static quantization with ONNX Runtime, behind an accuracy gate.

Steps: ``quant_pre_process`` (shape inference, graph optimization with Conv+BN fusion), calibration on real
images through the model's own preprocessing, QDQ quantization (uint8 activations, int8 weights, per-channel
weights by default), then the gate: FP32 and INT8 mIoU on validation images. When INT8 loses more than
``max_drop`` mIoU points, the activations whose own quantization noise is worst (lowest per-channel
signal-to-quantization-noise ratio, measured on the QDQ graph's Quantize/Dequantize pairs as ONNX Runtime's
``qdq_loss_debug`` does) have their producer and consumer nodes kept in float, and quantization is retried
with the calibration cached; if no attempt within ``max_float_nodes`` passes, nothing is written and
:class:`GateFailed` is raised.

Two graph rules make INT8 pay off on CPUs (measured, see ``benchmarks/quantize.py``):

- the *tail* — every node after the last convolution on the way to the output (the final upsampling of the
  logits, argmax/softmax, the crop) — stays float: quantizing it adds a Quantize/Dequantize pair at full
  resolution and coarsens the logits;
- ``Shape`` nodes read the quantized tensor instead of a ``DequantizeLinear`` output, so that no full-size
  dequantization runs only to feed a ``Shape`` and the Conv → Quantize fusions stay possible.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeseg.errors import EdgesegError, GateFailed, InputError
from edgeseg.export.graph_edits import name_nodes, restore_io, set_prop, shapes_read_through, tail_nodes
from edgeseg.export.metadata import read_metadata, write_metadata
from edgeseg.fileio import atomic_path, check_writable
from edgeseg.quantize import defaults
from edgeseg.quantize.calibration import (
    Agreement,
    ImageCalibrationReader,
    calibration_size,
    check_classes,
    check_sizes,
    compare_models,
    describe_data,
    make_session,
    open_dataset,
    open_fp32,
    spread_indices,
    val_feeds,
)
from edgeseg.quantize.portable import qdq_opset, sigmoid_gates
from edgeseg.quantize.sensitivity import exclusion_schedule, rank_sensitive_tensors
from edgeseg.runtime.metadata import ModelMetadata

METHODS = ("minmax", "entropy", "percentile")
SENSITIVITY_IMAGES = 4
CALIB_CHUNK = 16
CALIB_CHUNK_PIXELS = 16 * 512 * 512


@dataclass
class Attempt:
    """One quantization tried by the gate."""

    float_nodes: list[str]
    miou_int8: float
    drop: float
    passed: bool


@dataclass
class QuantReport:
    """What :func:`quantize_int8` wrote and the evidence that it is accurate enough (mIoU in points)."""

    path: Path
    precision: str
    method: str
    per_channel: bool
    reduce_range: bool
    calib_data: str
    calib_images: int
    calib_size: tuple[int, int]
    val_data: str
    val_images: int
    miou_fp32: float
    miou_int8: float
    drop: float
    max_drop: float
    agreement: float
    float_nodes: list[str]
    attempts: list[Attempt] = field(default_factory=list)
    other_sizes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: the mIoU change against the gate and the nodes kept in float."""
        kept = ", ".join(self.float_nodes) if self.float_nodes else "none"
        return (
            f"INT8: mIoU {self.miou_fp32:.2f} -> {self.miou_int8:.2f} ({self.drop:+.2f} lost, "
            f"allowed {self.max_drop:.2f}) on {self.val_images} images; nodes kept float: {kept}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (paths as strings)."""
        out = asdict(self)
        out["path"] = str(self.path)
        out["calib_size"] = list(self.calib_size)
        return out


def cpu_has_vnni() -> bool:
    """Whether this CPU has 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX): the Linux flags
    :func:`edgeseg.bench.machine.machine_info` reads; False where they cannot be read."""
    from edgeseg.bench.machine import machine_info

    return bool(machine_info().int8_dot_product)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Silence the warnings ONNX Runtime's quantization tools log (to the root logger among others) about
    tensors they skip, such as integer shape arithmetic; errors still show."""
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def preprocess(src: Path, dst: Path) -> None:
    """``quant_pre_process``: symbolic and ONNX shape inference plus optimization (Conv+BN fusion); symbolic
    inference is skipped when it cannot handle the graph."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(os.fspath(src), os.fspath(dst), auto_merge=True)
    except Exception:  # symbolic shape inference gives up on some dynamic graphs: ONNX inference suffices
        quant_pre_process(os.fspath(src), os.fspath(dst), skip_symbolic_shape=True)
    model = onnx.load(os.fspath(dst))
    name_nodes(model)
    onnx.save(model, os.fspath(dst))


def _chunk(count: int, size: tuple[int, int]) -> int:
    """Images per calibration chunk: the largest divisor of ``count`` (ONNX Runtime needs an exact split) up
    to ``CALIB_CHUNK`` images and ``CALIB_CHUNK_PIXELS`` pixels, which bounds the activations held at once."""
    limit = max(1, min(count, CALIB_CHUNK, CALIB_CHUNK_PIXELS // (size[0] * size[1])))
    return max(d for d in range(1, limit + 1) if count % d == 0)


def run_quantizer(
    src: Path,
    dst: Path,
    reader: ImageCalibrationReader,
    *,
    method: str,
    per_channel: bool,
    reduce_range: bool,
    exclude: Sequence[str],
    cache: Path,
) -> None:
    """ONNX Runtime ``quantize_static`` in QDQ format, U8 activations and S8 weights; the calibration ranges
    are computed in chunks and cached in ``cache`` so that retries skip calibration."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calib_method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    reader.set_range(0, len(reader))
    with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print their progress
        quantize_static(
            os.fspath(src),
            os.fspath(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            calibrate_method=calib_method,
            calibration_cache_path=os.fspath(cache),
            extra_options={"CalibStridedMinMax": _chunk(len(reader), reader.size)},
        )


def finalize(qdq_path: Path, source: onnx.ModelProto, info: dict[str, Any]) -> onnx.ModelProto:
    """The QDQ model with Shape reads fixed, the source's input/output declarations (symbolic shape
    inference writes padded sizes there), only the opsets its nodes use, and the source's metadata with
    ``precision`` int8 and a ``quantization`` entry (JSON: method, calibration, gate figures)."""
    model = qdq_opset(onnx.load(os.fspath(qdq_path)))
    shapes_read_through(model, ("DequantizeLinear",))
    restore_io(model, source)
    meta = read_metadata(source)
    meta.precision = "int8"
    meta.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), meta.opset)
    del model.metadata_props[:]
    model.metadata_props.extend(source.metadata_props)
    write_metadata(model, meta)
    set_prop(model, "quantization", json.dumps(info))
    return model


def _check_args(calib_size: int, val_size: int, max_drop: float, method: str, max_float_nodes: int) -> None:
    if method not in METHODS:
        raise InputError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    if calib_size < 1:
        raise InputError(f"calib_size must be at least 1, got {calib_size}")
    if val_size < 1:
        raise InputError(f"val_size must be at least 1, got {val_size}")
    if not math.isfinite(max_drop):
        raise InputError(f"max_drop must be a finite number of mIoU points, got {max_drop}")
    if max_float_nodes < 0:
        raise InputError(f"max_float_nodes must be >= 0, got {max_float_nodes}")


@dataclass
class _Job:
    """Everything one quantization needs across the gate's attempts."""

    source: onnx.ModelProto
    meta: ModelMetadata
    fp32: Any
    reader: ImageCalibrationReader
    val_set: Any
    val_count: int
    num_classes: int
    work: Path
    info: dict[str, Any]
    reference: dict[str, np.ndarray] = field(default_factory=dict)

    def quantize(self, pre: Path, exclude: list[str], attempt: int) -> tuple[Path, Path]:
        """Quantize ``pre`` keeping ``exclude`` float; return the raw QDQ file and the finished candidate."""
        qdq = self.work / f"qdq{attempt}.onnx"
        try:
            run_quantizer(
                pre,
                qdq,
                self.reader,
                method=self.info["method"],
                per_channel=self.info["per_channel"],
                reduce_range=self.info["reduce_range"],
                exclude=exclude,
                cache=self.work / "calibration.json",
            )
        except Exception as err:  # onnxruntime.quantization raises many types; report one line
            first = (str(err).splitlines() or [type(err).__name__])[0][:300]
            raise EdgesegError(f"ONNX Runtime could not quantize the model: {first}") from err
        candidate = self.work / f"int8_{attempt}.onnx"
        onnx.save(finalize(qdq, self.source, self.info), os.fspath(candidate))
        return qdq, candidate

    def measure(self, candidate: Path) -> tuple[Agreement, list[str]]:
        """Check the candidate at other sizes (dynamic models); its mIoU next to FP32's on validation."""
        session = make_session(candidate)
        node = session.get_inputs()[0]
        sizes = [] if self.meta.static_size else check_sizes(session, self.meta, self.reader.size)
        feeds = val_feeds(self.val_set, self.meta, node.shape, self.val_count)
        result = compare_models(self.fp32, session, feeds, self.meta, self.num_classes, self.reference)
        return result, sizes


def quantize_int8(
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    calib: str | os.PathLike | Any = "synthetic",
    calib_size: int = defaults.CALIB_SIZE,
    val: str | os.PathLike | Any | None = None,
    val_size: int = defaults.VAL_SIZE,
    max_drop: float = defaults.MAX_DROP,
    method: str = defaults.METHOD,
    per_channel: bool = True,
    reduce_range: bool | None = None,
    max_float_nodes: int = defaults.MAX_FLOAT_NODES,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> QuantReport:
    """Quantize the FP32 ONNX model at ``model_path`` to INT8 at ``out_path`` if it keeps its accuracy.

    ``calib`` is a dataset root (``"synthetic"`` or a folder) or a dataset object; ``calib_size`` images
    spread over its ``train`` split calibrate the activation ranges (``method``: minmax, entropy or
    percentile). ``val`` (default: the calibration data's ``val`` split) gives up to ``val_size`` images on
    which FP32 and INT8 mIoU are measured; the drop must be at most ``max_drop`` points, else up to
    ``max_float_nodes`` sensitive nodes are kept in float and quantization retried. ``reduce_range`` (7-bit
    weights) defaults to on for CPUs without VNNI, where 8-bit products can saturate. ``progress`` receives
    one line per step.

    Raises :class:`InputError` for bad arguments, files or data, :class:`GateFailed` when no attempt passes
    (nothing is written), :class:`EdgesegError` when quantization fails or the result rejects other sizes.
    """
    start = time.perf_counter()
    say = progress or (lambda _msg: None)
    _check_args(calib_size, val_size, max_drop, method, max_float_nodes)
    target = check_writable(out_path, force)
    opened = open_fp32(model_path, "quantize")
    source, meta, fp32, num_classes = opened.proto, opened.meta, opened.session, opened.num_classes
    node = fp32.get_inputs()[0]
    val_data = val if val is not None else calib
    calib_set = open_dataset(calib, "train", meta.data)
    val_set = open_dataset(val_data, "val", meta.data)
    check_classes(calib_set, num_classes, f"calibration data {describe_data(calib)}")
    check_classes(val_set, num_classes, f"validation data {describe_data(val_data)}")
    indices = spread_indices(len(calib_set), calib_size)
    size = calibration_size(calib_set, indices[0])
    reader = ImageCalibrationReader(calib_set, indices, meta, node.name, node.shape, size)
    info: dict[str, Any] = {
        "method": method, "per_channel": per_channel,
        "reduce_range": (not cpu_has_vnni()) if reduce_range is None else reduce_range,
        "calib_data": describe_data(calib), "calib_images": len(indices), "calib_size": list(size),
        "val_data": describe_data(val_data), "val_images": min(val_size, len(val_set)), "float_nodes": [],
    }  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="edgeseg-int8-") as tmp, quiet_logs():
        job = _Job(source, meta, fp32, reader, val_set, info["val_images"], num_classes, Path(tmp), info)
        onnx.save(source, os.fspath(job.work / "src.onnx"))
        say("pre-processing: shape inference and graph optimization")
        pre = job.work / "pre.onnx"
        preprocess(job.work / "src.onnx", pre)
        pre_model = onnx.load(os.fspath(pre))
        always_float = tail_nodes(pre_model) + sigmoid_gates(pre_model)
        say(f"calibrating on {len(indices)} images at {size[0]}x{size[1]} ({method})")
        attempts: list[Attempt] = []
        schedule: list[list[str]] | None = None
        while True:
            qdq, candidate = job.quantize(pre, always_float + info["float_nodes"], len(attempts))
            say(f"measuring mIoU on {info['val_images']} validation images")
            result, other_sizes = job.measure(candidate)
            drop = result.drop or 0.0
            attempts.append(Attempt(info["float_nodes"], 100 * result.miou_candidate, drop, drop <= max_drop))
            if attempts[-1].passed:
                break  # the caller prints the passing result, from the report
            say(
                f"mIoU FP32 {100 * result.miou_reference:.2f}, INT8 {100 * result.miou_candidate:.2f}: drop "
                f"{drop:.2f} points > allowed {max_drop:.2f}, {len(info['float_nodes'])} nodes kept float"
            )
            if schedule is None:
                say("ranking the activations that quantization damages most")
                ranked = rank_sensitive_tensors(pre, qdq, reader.subset(SENSITIVITY_IMAGES))
                schedule = exclusion_schedule(pre_model, ranked, max_float_nodes)
            if not schedule:
                raise GateFailed(_failure_message(attempts, max_drop, max_float_nodes))
            info["float_nodes"] = schedule.pop(0)
        final = onnx.load(os.fspath(candidate))
        figures = {
            "miou_fp32": round(100 * result.miou_reference, 3),
            "miou_int8": round(100 * result.miou_candidate, 3),
        }
        set_prop(final, "quantization", json.dumps({**info, **figures}))
        with atomic_path(target) as tmp_target:
            onnx.save(final, os.fspath(tmp_target))
    return QuantReport(
        path=target,
        precision="int8",
        method=method,
        per_channel=per_channel,
        reduce_range=info["reduce_range"],
        calib_data=info["calib_data"],
        calib_images=len(indices),
        calib_size=size,
        val_data=info["val_data"],
        val_images=info["val_images"],
        miou_fp32=100 * result.miou_reference,
        miou_int8=100 * result.miou_candidate,
        drop=drop,
        max_drop=max_drop,
        agreement=result.agreement,
        float_nodes=info["float_nodes"],
        attempts=attempts,
        other_sizes=other_sizes,
        seconds=time.perf_counter() - start,
    )


def _failure_message(attempts: Sequence[Attempt], max_drop: float, max_float_nodes: int) -> str:
    best = min(attempts, key=lambda a: a.drop)
    return (
        f"INT8 accuracy gate failed: mIoU drop {attempts[0].drop:.2f} points > allowed {max_drop:.2f}; "
        f"{len(attempts) - 1} retries keeping up to {max_float_nodes} sensitive nodes in float got it down "
        f"to {best.drop:.2f} at best; nothing was written"
    )
