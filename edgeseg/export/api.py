"""``to_onnx``: any segmentation ``nn.Module`` to a checked, simplified, validated ONNX file.

Steps: probe the model once (its number of classes, dict outputs), wrap it (in-graph preprocessing,
output kind), export with torch, check the raw graph, simplify and check again, for a coarse export cut the
final upsampling off (the runtime does it, more cheaply: ``edgeseg.runtime.ops.upsample_argmax``), write the
metadata, save to a temporary file beside the target, run the parity gate on that file, and only then rename
it into place. A failed gate leaves the target path untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from edgeseg.errors import EdgesegError, InputError
from edgeseg.export.check import check_graph
from edgeseg.export.graph_edits import cut_final_upsample
from edgeseg.export.metadata import build_metadata, finalize_metadata, write_metadata
from edgeseg.export.simplify import count_nodes, simplify_model
from edgeseg.export.torch_export import (
    DEFAULT_EXPORTER,
    DEFAULT_OPSET,
    check_opset,
    export_module,
    set_io_shapes,
)
from edgeseg.export.validate import ParityFailed, Tolerances, ValidationResult, validate_onnx
from edgeseg.export.wrappers import OUTPUT_KINDS, ExportWrapper, select_logits
from edgeseg.fileio import atomic_path, check_writable
from edgeseg.runtime.metadata import ModelMetadata


@dataclass
class ExportReport:
    """What :func:`to_onnx` made and how it was checked."""

    path: Path
    exporter: str
    opset: int
    output: str
    preprocess: bool
    upsample: int
    dynamic_batch: bool
    static_size: tuple[int, int] | None
    nodes_exported: int
    nodes_final: int
    simplifier: str | None
    simplify_note: str
    metadata: ModelMetadata
    validation: ValidationResult | None
    file_size: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (metadata as its stored props, validation as its summary dict)."""
        return {
            "path": str(self.path),
            "exporter": self.exporter,
            "opset": self.opset,
            "output": self.output,
            "preprocess": self.preprocess,
            "upsample": self.upsample,
            "dynamic_batch": self.dynamic_batch,
            "static_size": list(self.static_size) if self.static_size else None,
            "nodes_exported": self.nodes_exported,
            "nodes_final": self.nodes_final,
            "simplifier": self.simplifier,
            "simplify_note": self.simplify_note,
            "metadata": self.metadata.to_props(),
            "validation": self.validation.to_dict() if self.validation else None,
            "file_size": self.file_size,
            "seconds": self.seconds,
            "warnings": list(self.warnings),
        }


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _example_size(stride: int, static_size: tuple[int, int] | None) -> tuple[int, int]:
    """Trace size: odd and off the stride grid, so padding code is traced on its padding path."""
    if static_size:
        return static_size
    base = max(stride, 32)
    return 2 * base + 5, 3 * base + 7


def _check_static_size(static_size: Sequence[int] | None, dynamic: bool) -> tuple[int, int] | None:
    if static_size is None:
        if not dynamic:
            raise InputError("dynamic=False needs static_size=(H, W)")
        return None
    if len(static_size) != 2 or any(int(v) < 1 for v in static_size):
        raise InputError(f"static_size must be (H, W) with positive values, got {tuple(static_size)}")
    return int(static_size[0]), int(static_size[1])


def _probe(module: nn.Module, example: torch.Tensor, output_key: str | int | None) -> int:
    """Run the model once; return its number of classes, or fail clearly on an unusable output."""
    with torch.inference_mode():
        logits = select_logits(module(example), output_key)
    if logits.ndim != 4 or tuple(logits.shape[-2:]) != tuple(example.shape[-2:]):
        raise InputError(
            f"the model must return N×C×H×W logits at the input size; for input {tuple(example.shape)} "
            f"it returned {tuple(logits.shape)}"
        )
    return int(logits.shape[1])


def to_onnx(
    module: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    exporter: str = DEFAULT_EXPORTER,
    dynamic: bool = True,
    static_size: Sequence[int] | None = None,
    output: str = "logits",
    preprocess: bool = False,
    coarse: bool = False,
    metadata: ModelMetadata | Mapping[str, Any] | None = None,
    simplify: bool = True,
    validate: bool = True,
    output_key: str | int | None = None,
    force: bool = False,
    samples: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
    tolerances: Tolerances | None = None,
) -> ExportReport:
    """Export a segmentation model to ONNX and prove it computes what the PyTorch model computes.

    ``module`` maps float N×3×H×W normalized images to N×C×H×W logits (or a dict/tuple holding them:
    ``output_key`` picks them). Batch, height and width are dynamic unless ``static_size=(H, W)`` fixes
    height and width (and ``dynamic=False`` also the batch, to 1). ``output`` is ``logits``, ``softmax``
    or ``argmax`` (uint8 labels when classes ≤ 255); ``preprocess`` makes the input uint8 N×H×W×3 RGB,
    normalized in the graph with the metadata's ``mean``/``std``. ``coarse`` (logits only) ends the graph
    before the final bilinear upsampling: the file returns logits at the model's output stride and records
    the factor (``upsample`` in the metadata); ``edgeseg.runtime.Segmenter`` takes the argmax at full
    resolution without building full-resolution logits, which saves most of the cost of the graph's tail
    (validation compares the upsampled logits with PyTorch's). ``metadata`` overrides fields of the stored
    :class:`ModelMetadata` (classes, palette, stride, ...). ``samples`` — (image, mask) pairs — add the
    real-image and mIoU checks to validation.

    Raises :class:`InputError` for bad arguments or an existing ``path`` without ``force``,
    :class:`EdgesegError` when the exporter fails, and :class:`ParityFailed` (a ``GateFailed``) when the
    graph check or parity gate fails — then nothing is written.
    """
    start = time.perf_counter()
    target = check_writable(path, force)
    check_opset(opset, exporter)
    if output not in OUTPUT_KINDS:
        raise InputError(f"output must be one of {', '.join(OUTPUT_KINDS)}, got {output!r}")
    if coarse and output != "logits":
        raise InputError(f"a coarse export returns logits; it cannot have output={output!r}")
    static = _check_static_size(static_size, dynamic)
    samples = list(samples) if samples is not None else None
    with _eval_mode(module):
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        stride = int(getattr(module, "stride", 32))
        height, width = _example_size(stride, static)
        batch = 2 if dynamic else 1
        float_example = torch.randn(batch, 3, height, width, device=device)
        num_classes = _probe(module, float_example, output_key)
        meta = build_metadata(module, num_classes=num_classes, overrides=metadata)
        wrapper = ExportWrapper(
            module,
            output=output,
            preprocess=preprocess,
            mean=meta.mean,
            std=meta.std,
            output_key=output_key,
            num_classes=num_classes,
        ).to(device)
        example = (
            torch.randint(0, 256, (batch, height, width, 3), dtype=torch.uint8, device=device)
            if preprocess
            else float_example
        )
        exported = export_module(
            wrapper,
            example,
            exporter=exporter,
            opset=opset,
            input_layout="NHWC" if preprocess else "NCHW",
            output=output,
            dynamic_batch=dynamic,
            dynamic_hw=static is None,
        )
    io_shapes = dict(
        input_layout="NHWC" if preprocess else "NCHW",
        output=output,
        num_classes=num_classes,
        batch=None if dynamic else 1,
        size=static,
    )
    raw = exported.model
    set_io_shapes(raw, **io_shapes)
    check_graph(raw, "the raw export")
    final, tool, note = raw, None, ""
    if simplify:
        try:
            simplified = simplify_model(raw)
        except RuntimeError as err:
            note = f"kept the unsimplified graph: {err}"
        else:
            set_io_shapes(simplified.model, **io_shapes)
            check_graph(simplified.model, f"the graph simplified by {simplified.tool}")
            final, tool, note = simplified.model, simplified.tool, simplified.note
    upsample = _cut_upsample(final, io_shapes, module) if coarse else 1
    meta = finalize_metadata(
        meta,
        output=output,
        preprocess=preprocess,
        opset=exported.opset,
        static_size=static,
        upsample=upsample,
    )
    write_metadata(final, meta)
    result = None
    with atomic_path(target) as tmp:
        onnx.save(final, os.fspath(tmp))
        if validate:
            result = validate_onnx(
                tmp,
                module,
                metadata=meta,
                output_key=output_key,
                samples=samples,
                num_classes=num_classes,
                tolerances=tolerances,
            )
            if not result.passed:
                raise _gate_failure(
                    result, raw, tool, module, meta, output_key, num_classes, tolerances, exported.warnings
                )
    return ExportReport(
        path=target,
        exporter=exported.exporter,
        opset=exported.opset,
        output=output,
        preprocess=preprocess,
        upsample=upsample,
        dynamic_batch=dynamic,
        static_size=static,
        nodes_exported=count_nodes(raw),
        nodes_final=count_nodes(final),
        simplifier=tool,
        simplify_note=note,
        metadata=meta,
        validation=result,
        file_size=target.stat().st_size,
        seconds=time.perf_counter() - start,
        warnings=exported.warnings,
    )


def _cut_upsample(model: onnx.ModelProto, io_shapes: dict[str, Any], module: nn.Module) -> int:
    """Cut the final upsampling off ``model`` (in place), declare the coarse output; return the factor."""
    try:
        factor = cut_final_upsample(model)
    except ValueError as err:
        raise InputError(f"cannot export {type(module).__name__} coarse: {err}") from err
    size = io_shapes["size"]
    coarse_size: tuple[int | str, int | str] = ("coarse_height", "coarse_width")
    if size is not None:
        inferred = onnx.shape_inference.infer_shapes(model)
        source = model.graph.node[-1].input[0]
        for info in inferred.graph.value_info:
            dims = info.type.tensor_type.shape.dim
            if info.name == source and len(dims) == 4 and all(d.HasField("dim_value") for d in dims[2:]):
                coarse_size = (dims[2].dim_value, dims[3].dim_value)
    set_io_shapes(model, **io_shapes, output_size=coarse_size)
    check_graph(model, "the coarse graph")
    return factor


def _gate_failure(
    result: ValidationResult,
    raw: onnx.ModelProto,
    tool: str | None,
    module: nn.Module,
    meta: ModelMetadata,
    output_key: str | int | None,
    num_classes: int,
    tolerances: Tolerances | None,
    tracer_warnings: list[str],
) -> EdgesegError:
    """Build the error for a failed gate, saying whether simplification or the export itself is to blame."""
    blame = ""
    if tool is not None:
        meta = dataclasses.replace(meta, upsample=1)  # the raw graph still ends in its upsampling
        write_metadata(raw, meta)
        raw_result = validate_onnx(
            raw, module, metadata=meta, output_key=output_key, num_classes=num_classes, tolerances=tolerances
        )
        if raw_result.passed:
            blame = f" The unsimplified graph passes: {tool} changed the outputs; export with --no-simplify."
    if not blame and tracer_warnings:
        blame = " The tracer warned: " + " | ".join(tracer_warnings[:3]) + " (try --exporter dynamo)."
    message = "the exported model does not match PyTorch: " + "; ".join(result.failures)[:400] + "." + blame
    return ParityFailed(message + " Nothing was written.", result)
