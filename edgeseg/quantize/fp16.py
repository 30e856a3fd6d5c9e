"""FP16 conversion for GPU deployment, validated by argmax agreement and mIoU rather than logit tolerance.

Weights and compute go to float16 with ``onnxconverter-common``; inputs and outputs stay float32
(``keep_io_types``), and so do the ops where half precision goes wrong or buys nothing: Resize/Upsample
(coordinate arithmetic and the full-resolution upsampling), reductions and softmax (accumulation), ArgMax,
Pad and the shape arithmetic, plus every node after the last convolution (the *tail*: upsampling, crop,
argmax) so that no float16 round trip happens at full resolution. ``Shape`` nodes read through the inserted
Casts. Logits of an FP16 model differ from FP32 by ~1e-3 relative, which says nothing about the masks: the
gate compares argmax labels (random inputs at several sizes, and real images with ``val``) and mIoU.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeseg.errors import EdgesegError, GateFailed, InputError
from edgeseg.export.feeds import random_feeds
from edgeseg.export.graph_edits import set_prop, shapes_read_through, tail_nodes
from edgeseg.export.metadata import read_metadata, write_metadata
from edgeseg.fileio import atomic_path, check_writable
from edgeseg.quantize import defaults
from edgeseg.quantize.calibration import (
    check_classes,
    check_sizes,
    compare_models,
    describe_data,
    make_session,
    open_dataset,
    open_fp32,
    val_feeds,
)

FLOAT32_OPS = (
    "Resize", "Upsample", "ReduceMean", "ReduceSum", "GlobalAveragePool", "Softmax", "LogSoftmax", "ArgMax",
    "Pad", "Range", "CumSum", "TopK", "NonMaxSuppression", "RoiAlign", "Min", "Max",
)  # fmt: skip
"""Op types kept in float32 by default (on top of every node of the graph's tail)."""


@dataclass
class Fp16Report:
    """What :func:`convert_fp16` wrote and how it compares with the FP32 model (mIoU in points)."""

    path: Path
    precision: str
    agreement: float
    random_agreement: float
    pixels: int
    val_data: str | None
    val_images: int
    miou_fp32: float | None
    miou_fp16: float | None
    drop: float | None
    float32_nodes: int
    float16_nodes: int
    other_sizes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: agreement with FP32 and, with validation data, the mIoU change."""
        line = f"FP16: argmax agreement {100 * self.agreement:.3f} % over {self.pixels} pixels"
        if self.drop is not None:
            line += f", mIoU {self.miou_fp32:.2f} -> {self.miou_fp16:.2f} ({self.drop:+.2f} lost)"
        return line

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (paths as strings)."""
        out = asdict(self)
        out["path"] = str(self.path)
        return out


def half_model(
    model: onnx.ModelProto, float32_ops: Sequence[str] = FLOAT32_OPS
) -> tuple[onnx.ModelProto, int]:
    """The float16 version of ``model`` with float32 inputs/outputs, ``float32_ops`` and the tail in
    float32; returns it with the number of nodes left in float32."""
    from onnxconverter_common import float16

    tail = tail_nodes(model)
    blocked_ops = set(float32_ops)
    kept = sum(1 for node in model.graph.node if node.op_type in blocked_ops or node.name in tail)
    try:
        half = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=sorted(blocked_ops), node_block_list=tail
        )
    except Exception as err:  # the converter raises plain Exceptions and ValueErrors
        first = (str(err).splitlines() or [type(err).__name__])[0][:300]
        raise EdgesegError(f"float16 conversion failed: {first}") from err
    restore_output_types(half, model)
    shapes_read_through(half, ("Cast",))
    return half, kept


def restore_output_types(half: onnx.ModelProto, original: onnx.ModelProto) -> None:
    """Give the graph outputs their original element types back.

    ``onnxconverter-common`` ignores ``keep_io_types`` for an output made by a blocked (float32) node: it
    appends a Cast to float16 there. That Cast is turned back into one to the original type (a float32 →
    float32 Cast, which ONNX Runtime removes) and the declared output type restored.
    """
    producer = {out: node for node in half.graph.node for out in node.output}
    wanted = {o.name: o.type.tensor_type.elem_type for o in original.graph.output}
    for output in half.graph.output:
        elem = wanted.get(output.name)
        if elem is None or output.type.tensor_type.elem_type == elem:
            continue
        node = producer.get(output.name)
        if node is None or node.op_type != "Cast":
            raise EdgesegError(f"float16 conversion changed the type of output {output.name!r}")
        for attr in node.attribute:
            if attr.name == "to":
                attr.i = elem
        output.type.tensor_type.elem_type = elem


def _check_args(val_size: int, max_drop: float, min_agreement: float) -> None:
    if val_size < 1:
        raise InputError(f"val_size must be at least 1, got {val_size}")
    if not math.isfinite(max_drop):
        raise InputError(f"max_drop must be a finite number of mIoU points, got {max_drop}")
    if not 0.0 <= min_agreement <= 1.0:
        raise InputError(f"min_agreement must be a fraction in [0, 1], got {min_agreement}")


def convert_fp16(
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    val: str | os.PathLike | Any | None = None,
    val_size: int = defaults.VAL_SIZE,
    max_drop: float = defaults.MAX_DROP,
    min_agreement: float = defaults.MIN_AGREEMENT,
    float32_ops: Sequence[str] = FLOAT32_OPS,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Fp16Report:
    """Convert the FP32 ONNX model at ``model_path`` to FP16 at ``out_path`` if it segments the same.

    The gate runs both models with ONNX Runtime (CPU) on random inputs at three sizes (one odd, one
    non-square, a batch of two where the batch is dynamic) and, with ``val`` (a dataset root or object, its
    ``val`` split), on up to ``val_size`` real images: argmax agreement over all pixels must reach
    ``min_agreement`` and the mIoU drop on ``val`` stay within ``max_drop`` points. Otherwise nothing is
    written and :class:`GateFailed` is raised. Metadata is copied with ``precision`` "fp16".
    """
    start = time.perf_counter()
    say = progress or (lambda _msg: None)
    _check_args(val_size, max_drop, min_agreement)
    target = check_writable(out_path, force)
    opened = open_fp32(model_path, "convert")
    source, meta, fp32, num_classes = opened.proto, opened.meta, opened.session, opened.num_classes
    node = fp32.get_inputs()[0]
    val_set = open_dataset(val, "val", meta.data) if val is not None else None
    if val_set is not None:
        check_classes(val_set, num_classes, f"validation data {describe_data(val)}")
    say("converting weights and compute to float16")
    half, kept = half_model(source, float32_ops)
    write_metadata(half, _fp16_meta(source))
    with tempfile.TemporaryDirectory(prefix="edgeseg-fp16-") as tmp:
        candidate_path = Path(tmp) / "fp16.onnx"
        onnx.save(half, os.fspath(candidate_path))
        candidate = make_session(candidate_path)
        say("comparing argmax with the FP32 model")
        random = compare_models(fp32, candidate, random_feeds(meta, node.shape), meta, num_classes)
        same, pixels = random.agreement * random.pixels, random.pixels
        real = None
        if val_set is not None:
            count = min(val_size, len(val_set))
            feeds = val_feeds(val_set, meta, node.shape, count)
            real = compare_models(fp32, candidate, feeds, meta, num_classes)
            same, pixels = same + real.agreement * real.pixels, pixels + real.pixels
        sizes = [] if meta.static_size else check_sizes(candidate, meta, _first_size(val_set))
        report = Fp16Report(
            path=target,
            precision="fp16",
            agreement=same / pixels,
            random_agreement=random.agreement,
            pixels=pixels,
            val_data=describe_data(val) if val is not None else None,
            val_images=min(val_size, len(val_set)) if val_set is not None else 0,
            miou_fp32=None if real is None else 100 * real.miou_reference,
            miou_fp16=None if real is None else 100 * real.miou_candidate,
            drop=None if real is None else real.drop,
            float32_nodes=kept,
            float16_nodes=len(source.graph.node) - kept,
            other_sizes=sizes,
        )
        failures = _failures(report, max_drop, min_agreement)
        if failures:
            raise GateFailed(f"FP16 gate failed: {'; '.join(failures)}; nothing was written")
        set_prop(half, "fp16_conversion", json.dumps({
            "float32_ops": sorted(set(float32_ops)), "agreement": round(report.agreement, 6),
            "val_data": report.val_data, "miou_fp32": report.miou_fp32, "miou_fp16": report.miou_fp16,
        }))  # fmt: skip
        with atomic_path(target) as tmp_target:
            onnx.save(half, os.fspath(tmp_target))
    report.seconds = time.perf_counter() - start
    return report


def _fp16_meta(source: onnx.ModelProto) -> Any:
    meta = read_metadata(source)
    meta.precision = "fp16"
    return meta


def _first_size(val_set: Any) -> tuple[int, int]:
    """A reference size for the other-sizes check: the first validation image's, else 128×128."""
    if val_set is None:
        return 128, 128
    image, _ = val_set[0]
    return int(np.asarray(image).shape[0]), int(np.asarray(image).shape[1])


def _failures(report: Fp16Report, max_drop: float, min_agreement: float) -> list[str]:
    failures = []
    if report.agreement < min_agreement:
        failures.append(f"argmax agreement {100 * report.agreement:.3f} % < {100 * min_agreement:.3f} %")
    if report.drop is not None and report.drop > max_drop:
        failures.append(f"mIoU drop {report.drop:.2f} points > allowed {max_drop:.2f}")
    return failures
