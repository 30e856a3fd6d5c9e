"""What a loaded model expects and returns: edgeseg metadata, completed from the graph's own signature.

Files written by ``edgeseg export`` say everything in their ``metadata_props``. Files from other tools say
little, so whatever the graph shows is filled in: uint8 input means in-graph preprocessing with NHWC layout,
fixed height and width mean a static model, an integer output means labels (argmax).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeseg.errors import InputError
from edgeseg.runtime.metadata import ModelMetadata
from edgeseg.runtime.providers import import_onnxruntime

ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}
OUTPUT_KINDS = ("logits", "softmax", "argmax")


@dataclass(frozen=True)
class ModelIO:
    """Names, dtypes and fixed dimensions of the model's input and output, with its resolved metadata."""

    metadata: ModelMetadata
    input_name: str
    output_name: str
    input_dtype: type
    fixed_batch: int | None
    num_classes: int | None

    @property
    def graph_preprocess(self) -> bool:
        """True when the graph takes raw uint8 NHWC RGB and normalizes inside."""
        return self.metadata.preprocess == "graph"

    @property
    def labels_output(self) -> bool:
        """True when the graph ends in an argmax and returns class labels, not scores."""
        return self.metadata.output == "argmax"


def output_fits(output_hw: Sequence[int], input_hw: Sequence[int], metadata: ModelMetadata) -> bool:
    """Whether an output's height and width go with an input's: equal, or for a coarse export, once
    upsampled, the input's size padded up to the model's stride."""
    slack = max(metadata.stride, 1) if metadata.upsample > 1 else 1
    covered = [d * metadata.upsample for d in output_hw]
    if len(covered) != len(input_hw):
        return False
    return all(0 <= c - s < slack for c, s in zip(covered, input_hw, strict=True))


def _fixed(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def class_count(meta: ModelMetadata, output_shape: Sequence[Any] | None = None) -> int | None:
    """How many classes a model predicts: its metadata's class names, else the channel dimension of a
    scores output (N×C×H×W), else the ``num_classes`` of its constructor arguments; None if nothing says.

    The one answer to this question for an ONNX file; everything else asks :class:`ModelIO` or this.
    """
    if meta.classes:
        return len(meta.classes)
    if meta.output != "argmax" and output_shape is not None and len(output_shape) == 4:
        channels = _fixed(output_shape[1])
        if channels is not None:
            return channels
    declared = meta.model_args.get("num_classes")
    return declared if isinstance(declared, int) and not isinstance(declared, bool) else None


def read_model_io(session: Any, source: str) -> ModelIO:
    """Resolve a session's metadata and signature; ``source`` names the file in error messages."""
    props = dict(session.get_modelmeta().custom_metadata_map)
    try:
        meta = ModelMetadata.from_props(props)
    except (ValueError, TypeError, InputError) as err:
        raise InputError(f"{source}: unreadable edgeseg metadata: {err}") from err
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise InputError(f"{source}: expected a model with one input, found {[i.name for i in inputs]}")
    inp = inputs[0]
    out = next((o for o in outputs if o.name == "output"), outputs[0])
    if inp.type not in ORT_TYPES or out.type not in ORT_TYPES:
        raise InputError(f"{source}: unsupported input/output types {inp.type} -> {out.type}")
    input_dtype = ORT_TYPES[inp.type]
    if "preprocess" not in props:
        meta.preprocess = "graph" if input_dtype == np.uint8 else "none"
    if "input_layout" not in props:
        meta.input_layout = "NHWC" if meta.preprocess == "graph" else "NCHW"
    if "output" not in props:
        meta.output = "argmax" if np.issubdtype(ORT_TYPES[out.type], np.integer) else "logits"
    shape = list(inp.shape)
    if len(shape) != 4:
        raise InputError(f"{source}: expected a 4-D image input, got shape {shape}")
    spatial = shape[1:3] if meta.input_layout == "NHWC" else shape[2:4]
    graph_size = (_fixed(spatial[0]), _fixed(spatial[1]))
    if graph_size[0] and graph_size[1]:
        meta.static_size = (graph_size[0], graph_size[1])
    if meta.preprocess not in ("none", "graph"):
        raise InputError(f"{source}: unknown preprocess {meta.preprocess!r} in metadata")
    if meta.output not in OUTPUT_KINDS:
        raise InputError(f"{source}: unknown output kind {meta.output!r}; expected one of {OUTPUT_KINDS}")
    if meta.input_layout not in ("NCHW", "NHWC"):
        raise InputError(f"{source}: unknown input layout {meta.input_layout!r}")
    if meta.upsample < 1 or (meta.upsample > 1 and meta.output != "logits"):
        raise InputError(
            f"{source}: metadata upsample={meta.upsample} is invalid for output={meta.output!r} (a coarse "
            "export has logits and an upsampling factor >= 2; others have 1)"
        )
    if meta.preprocess == "graph" and input_dtype != np.uint8:
        raise InputError(f"{source}: metadata says in-graph preprocessing but the input is {inp.type}")
    return ModelIO(
        metadata=meta,
        input_name=inp.name,
        output_name=out.name,
        input_dtype=input_dtype,
        fixed_batch=_fixed(shape[0]),
        num_classes=class_count(meta, out.shape),
    )


def inspect_model(path: str) -> ModelIO:
    """Metadata and signature of an ONNX file, read through a CPU session without graph optimizations."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT's own exception types for unreadable or invalid models
        raise InputError(f"{path}: ONNX Runtime cannot load this model: {err}") from err
    return read_model_io(session, path)
