"""Running an ONNX file in the runtimes a user may deploy it on, for the parity gate.

``onnxruntime`` (CPU) is what edgeseg's runtime uses; ``opencv`` is OpenCV's DNN module (optional: the
``opencv-python-headless`` package); ``onnx-reference`` is onnx's reference evaluator (``onnx.reference``),
the specification in Python: slow, but it says what the graph means. See ``edgeseg/quantize/portable.py`` for
what makes INT8 files agree across them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import onnx

from edgeseg.errors import InputError

Runner = Callable[[np.ndarray], np.ndarray]
RUNTIMES = ("onnxruntime", "opencv", "onnx-reference")


class RuntimeUnavailable(InputError):
    """The runtime's package is not installed here (a check in it is skipped with this reason)."""


def check_runtime(name: str) -> str:
    """``name`` if it is a known runtime that can be imported here; else an error naming the choices or saying
    what to install (:class:`RuntimeUnavailable`)."""
    if name not in RUNTIMES:
        raise InputError(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")
    if name == "opencv":
        try:
            import cv2  # noqa: F401
        except ImportError:
            raise RuntimeUnavailable("OpenCV is not installed (pip install opencv-python-headless)") from None
    return name


def runtime_runner(
    name: str, model: onnx.ModelProto | str | os.PathLike
) -> tuple[Runner, list[object], list[object]]:
    """A function running ``model`` in runtime ``name`` on one input array (first output back), and the
    model's declared input and output shapes. A runtime that cannot load the model raises (its own exception
    types)."""
    check_runtime(name)
    if name == "onnxruntime":
        import onnxruntime as ort

        source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else os.fspath(model)
        session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        shapes = list(session.get_inputs()[0].shape), list(session.get_outputs()[0].shape)
        return (lambda x: session.run(None, {input_name: x})[0]), *shapes
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(os.fspath(model))
    input_name = proto.graph.input[0].name
    if name == "opencv":
        import cv2

        net = cv2.dnn.readNetFromONNX(np.frombuffer(proto.SerializeToString(), np.uint8))

        def run_opencv(x: np.ndarray) -> np.ndarray:
            net.setInput(x)
            return np.asarray(net.forward())

        return run_opencv, *_shapes(proto)
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(proto)
    return (lambda x: np.asarray(evaluator.run(None, {input_name: x})[0])), *_shapes(proto)


def _shapes(proto: onnx.ModelProto) -> tuple[list[object], list[object]]:
    """The first input's and output's shapes as ONNX Runtime reports them: ints, and names (or None) for
    free dimensions."""

    def dims(value: onnx.ValueInfoProto) -> list[object]:
        shape = value.type.tensor_type.shape.dim
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape]

    return dims(proto.graph.input[0]), dims(proto.graph.output[0])
