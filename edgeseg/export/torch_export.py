"""PyTorch → ONNX with either of torch's exporters, dynamic batch/height/width by default.

``torchscript`` (the tracer, ``dynamo=False``) is the default: on edgeseg's models it exports in well under
a second, gives exactly the requested opset (17 included) and, after simplification, the same graph as
``dynamo``. ``dynamo`` (``torch.export``) follows data-dependent Python (``.item()``, value-dependent
branches) that the tracer silently bakes into constants, but it is ~10× slower and cannot produce opsets
below 18 for models that pad (no Pad down-converter). Each exporter's failure names the other.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from functools import cache

import onnx
import torch
from torch import nn

from edgeseg.errors import EdgesegError, InputError

EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"
DEFAULT_OPSET = 17
MIN_OPSET = 11  # Resize with align_corners/half_pixel modes, the minimum for segmentation heads
TORCHSCRIPT_MAX_OPSET = 20


@dataclass
class TorchExport:
    """An exported graph and what the exporter said while making it."""

    model: onnx.ModelProto
    exporter: str
    opset: int
    warnings: list[str] = field(default_factory=list)


@cache
def ort_supports_opset(opset: int) -> bool:
    """Whether the installed ONNX Runtime can load a model of this default-domain opset (probed once)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    opset_ids = [helper.make_opsetid("", opset)]
    try:
        ir_version = helper.find_min_ir_version_for(opset_ids)
    except Exception:  # opset unknown to the installed onnx package
        return False
    probe = helper.make_model(graph, opset_imports=opset_ids, ir_version=ir_version)
    try:
        ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:
        return False
    return True


def max_ort_opset() -> int:
    """Highest default-domain opset the installed ONNX Runtime loads."""
    best = MIN_OPSET
    for opset in range(MIN_OPSET, onnx.defs.onnx_opset_version() + 1):
        if ort_supports_opset(opset):
            best = opset
    return best


def check_opset(opset: int, exporter: str) -> None:
    """Reject an opset that the chosen exporter cannot write or the installed ONNX Runtime cannot run."""
    if exporter not in EXPORTERS:
        raise InputError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if opset < MIN_OPSET:
        raise InputError(
            f"opset {opset} is too old for segmentation models (Resize); use {MIN_OPSET} or newer"
        )
    if not ort_supports_opset(opset):
        import onnxruntime as ort

        raise InputError(
            f"opset {opset} cannot be run by the installed onnxruntime {ort.__version__} "
            f"(it runs up to opset {max_ort_opset()})"
        )
    if exporter == "torchscript" and opset > TORCHSCRIPT_MAX_OPSET:
        raise InputError(
            f"the torchscript exporter writes opsets up to {TORCHSCRIPT_MAX_OPSET}; "
            f"use --exporter dynamo for opset {opset}"
        )


def _dynamic_axes(input_layout: str, output: str, dynamic_batch: bool, dynamic_hw: bool) -> tuple[dict, dict]:
    """Per-tensor maps {axis: name} of the dynamic dimensions of the input and the output."""
    h_axis, w_axis = (1, 2) if input_layout == "NHWC" else (2, 3)
    inp: dict[int, str] = {}
    out: dict[int, str] = {}
    out_h, out_w = (1, 2) if output == "argmax" else (2, 3)
    if dynamic_batch:
        inp[0] = out[0] = "batch"
    if dynamic_hw:
        inp[h_axis], inp[w_axis] = "height", "width"
        out[out_h], out[out_w] = "height", "width"
    return inp, out


def set_io_shapes(
    model: onnx.ModelProto,
    *,
    input_layout: str,
    output: str,
    num_classes: int,
    batch: int | None,
    size: tuple[int, int] | None,
    output_size: tuple[int | str, int | str] | None = None,
) -> None:
    """Write the declared input/output shapes: ``batch``/``height``/``width`` names or fixed values.

    ``output_size`` declares an output height and width other than the input's (a coarse export).
    Exporters and simplifiers name symbolic dimensions as they like (``unk__5``, ``Sliceoutput_dim_2``);
    the file states the contract instead. ``None`` means dynamic. Strict shape inference in the full
    checker afterwards confirms the fixed values.
    """
    n = batch if batch is not None else "batch"
    h, w = size if size is not None else ("height", "width")
    in_dims = [n, h, w, 3] if input_layout == "NHWC" else [n, 3, h, w]
    out_h, out_w = output_size if output_size is not None else (h, w)
    out_dims = [n, out_h, out_w] if output == "argmax" else [n, num_classes, out_h, out_w]
    for value, dims in ((model.graph.input[0], in_dims), (model.graph.output[0], out_dims)):
        shape = value.type.tensor_type.shape
        del shape.dim[:]
        for d in dims:
            dim = shape.dim.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = int(d)


def export_module(
    module: nn.Module,
    example: torch.Tensor,
    *,
    exporter: str = DEFAULT_EXPORTER,
    opset: int = DEFAULT_OPSET,
    input_layout: str = "NCHW",
    output: str = "logits",
    dynamic_batch: bool = True,
    dynamic_hw: bool = True,
) -> TorchExport:
    """Export ``module`` (in eval mode) traced on ``example`` to an in-memory ONNX model.

    The input is named ``input`` and the output ``output``; the marked dimensions are symbolic
    (``batch``, ``height``, ``width``). Raises :class:`EdgesegError` naming the other exporter when
    export fails, or when the exporter could not produce the requested opset.
    """
    check_opset(opset, exporter)
    in_axes, out_axes = _dynamic_axes(input_layout, output, dynamic_batch, dynamic_hw)
    other = "dynamo" if exporter == "torchscript" else "torchscript"
    captured = io.StringIO()
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(captured),
        contextlib.redirect_stderr(captured),
    ):
        warnings.simplefilter("always")
        try:
            if exporter == "torchscript":
                model = _export_torchscript(module, example, opset, in_axes, out_axes)
            else:
                model = _export_dynamo(module, example, opset, in_axes)
        except Exception as err:
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise EdgesegError(
                f"the {exporter} exporter failed: {type(err).__name__}: {first_line[:300]} "
                f"(try --exporter {other})"
            ) from err
    produced = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if produced != opset:
        raise EdgesegError(
            f"the {exporter} exporter produced opset {produced}, not the requested {opset} "
            f"(pass --opset {produced} or try --exporter {other})"
        )
    notes = sorted({_warning_line(w) for w in caught if _is_relevant(w)})
    return TorchExport(model=model, exporter=exporter, opset=produced, warnings=notes)


def _export_torchscript(
    module: nn.Module, example: torch.Tensor, opset: int, in_axes: dict, out_axes: dict
) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(
        module,
        (example,),
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": in_axes, "output": out_axes} if in_axes else None,
        do_constant_folding=True,
    )
    return onnx.load_from_string(buf.getvalue())


def _export_dynamo(module: nn.Module, example: torch.Tensor, opset: int, in_axes: dict) -> onnx.ModelProto:
    from torch.export import Dim

    dims = {axis: Dim(name, min=1 if name == "batch" else 2) for axis, name in in_axes.items()}
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        verbose=False,
        opset_version=opset,
        input_names=["input"],
        output_names=["output"],
        dynamic_shapes=(dims,) if dims else None,
        optimize=True,
    )
    return program.model_proto


def _is_relevant(w: warnings.WarningMessage) -> bool:
    """Tracer warnings flag Python values frozen into the graph: worth showing when validation fails."""
    return issubclass(w.category, torch.jit.TracerWarning)


def _warning_line(w: warnings.WarningMessage) -> str:
    return str(w.message).strip().splitlines()[0][:200]
