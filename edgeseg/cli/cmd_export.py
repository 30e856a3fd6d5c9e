"""``edgeseg export``: a checkpoint to a dynamic-shape, simplified ONNX model behind a parity gate."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg.errors import InputError
from edgeseg.export.tolerances import DEFAULT_MAX_IMAGES, FP32_TOLERANCES
from edgeseg.quantize import defaults as quantize_defaults
from edgeseg.sizes import parse_hw


def output_kind(argmax: bool, softmax: bool) -> str:
    """The output kind chosen by --argmax / --softmax (logits when neither)."""
    if argmax and softmax:
        raise InputError("choose one of --argmax and --softmax")
    return "argmax" if argmax else "softmax" if softmax else "logits"


def run_export(checkpoint: Path, onnx_path: Path, **options: Any) -> Any:
    """Export and validate (``edgeseg.export.export_checkpoint``), printing the parity table if it fails.

    Returns the :class:`~edgeseg.export.ExportReport`; other commands (INT8, FP16) build on it.
    """
    from edgeseg.export import ParityFailed, export_checkpoint

    try:
        return export_checkpoint(checkpoint, onnx_path, **options)
    except ParityFailed as err:
        from rich.console import Console

        Console(stderr=True).print(err.result.table())
        raise


def print_report(report: Any) -> None:
    """Human-readable lines about an export."""
    shape = "static " + "x".join(map(str, report.static_size)) if report.static_size else "dynamic"
    batch = "dynamic batch" if report.dynamic_batch else "batch 1"
    pre = ", uint8 NHWC input normalized in the graph" if report.preprocess else ""
    coarse = f" at 1/{report.upsample} (the runtime upsamples)" if report.upsample > 1 else ""
    typer.echo(
        f"exported with {report.exporter} (opset {report.opset}): {shape} size, {batch}, "
        f"{report.output} output{coarse}{pre}"
    )
    if report.simplifier:
        typer.echo(
            f"simplified by {report.simplifier}: {report.nodes_exported} -> {report.nodes_final} nodes"
            + (f" ({report.simplify_note})" if report.simplify_note else "")
        )
    else:
        typer.echo(
            f"not simplified: {report.nodes_final} nodes"
            + (f" ({report.simplify_note})" if report.simplify_note else "")
        )
    if report.validation is not None:
        typer.echo(f"parity: {report.validation.summary()}")
    else:
        typer.echo("parity: not validated (--no-validate)")
    typer.echo(f"wrote {report.path} ({report.file_size / 1e6:.2f} MB) in {report.seconds:.1f} s")


def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="An edgeseg checkpoint (.pt).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the ONNX model.")],
    opset: Annotated[
        int, typer.Option("--opset", help="ONNX opset (17, or newer ones ONNX Runtime runs).")
    ] = 17,
    exporter: Annotated[
        str, typer.Option("--exporter", help="torch exporter: torchscript (default) or dynamo.")
    ] = "torchscript",
    static: Annotated[
        str | None, typer.Option("--static", help="Fix height and width, e.g. 512x512 (default: dynamic).")
    ] = None,
    simplify: Annotated[
        bool, typer.Option("--simplify/--no-simplify", help="Simplify with onnxsim (onnxslim as fallback).")
    ] = True,
    argmax: Annotated[
        bool, typer.Option("--argmax", help="Output labels N×H×W (uint8) computed in the graph.")
    ] = False,
    softmax: Annotated[bool, typer.Option("--softmax", help="Output class probabilities.")] = False,
    preprocess: Annotated[
        bool, typer.Option("--preprocess", help="Take uint8 NHWC RGB and normalize inside the graph.")
    ] = False,
    coarse: Annotated[
        bool,
        typer.Option(
            "--coarse",
            help="End the graph before the final bilinear upsampling: logits at the output stride, "
            "upsampled by edgeseg's runtime, which labels full-size images without full-size logits "
            "(fastest for edgeseg predict and the Python runtime; other consumers must upsample).",
        ),
    ] = False,
    validate: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Run the parity gate against PyTorch.")
    ] = True,
    data: Annotated[
        str | None, typer.Option("--data", help="Validation images: a dataset folder or 'synthetic'.")
    ] = None,
    max_images: Annotated[
        int, typer.Option("--max-images", help="Validation images used from --data.")
    ] = DEFAULT_MAX_IMAGES,
    atol: Annotated[
        float, typer.Option("--atol", help="Largest allowed absolute output difference.")
    ] = FP32_TOLERANCES.max_abs,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the export report as JSON.")] = False,
    int8: Annotated[
        bool, typer.Option("--int8", help="Quantize to INT8 (needs --calib) behind the accuracy gate.")
    ] = False,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Convert to FP16 (GPU deployment) behind a gate.")
    ] = False,
    calib: Annotated[
        str | None, typer.Option("--calib", help="INT8 calibration data: a dataset folder or 'synthetic'.")
    ] = None,
    calib_size: Annotated[
        int, typer.Option("--calib-size", help="INT8 calibration images.")
    ] = quantize_defaults.CALIB_SIZE,
    max_drop: Annotated[
        float, typer.Option("--max-drop", help="Largest mIoU loss allowed for --int8/--fp16, in points.")
    ] = quantize_defaults.MAX_DROP,
) -> None:
    """Export a checkpoint to ONNX that takes any image size and proves it segments like PyTorch.

    Dynamic batch, height and width unless --static; metadata (classes, palette, normalization, stride,
    output kind, checkpoint hash, ...) goes into the file. The parity gate compares ONNX Runtime with
    PyTorch at three sizes (and on --data images: logits, argmax agreement, mIoU); if it fails, nothing is
    written and the exit code is 1.
    """
    from edgeseg.export import Tolerances

    if int8 and fp16:
        raise InputError("choose one of --int8 and --fp16")
    if int8 and not calib:
        raise InputError("--int8 needs --calib DATA (a dataset folder or 'synthetic') to calibrate on")
    if (int8 or fp16) and output_kind(argmax, softmax) != "logits":
        raise InputError("--int8/--fp16 quantize a logits model; drop --argmax/--softmax")
    if int8 or fp16:
        from edgeseg.fileio import check_writable

        check_writable(output, force)
    with contextlib.ExitStack() as stack:
        fp32_path = output
        if int8 or fp16:
            fp32_path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "fp32.onnx"
        report = run_export(
            checkpoint,
            fp32_path,
            opset=opset,
            exporter=exporter,
            static_size=parse_hw(static, "--static") if static else None,
            simplify=simplify,
            output=output_kind(argmax, softmax),
            preprocess=preprocess,
            coarse=coarse,
            validate=validate,
            data=data,
            max_images=max_images,
            tolerances=Tolerances(max_abs=atol),
            force=force,
        )
        if not as_json:
            print_report(report)
        if int8 or fp16:
            from edgeseg.cli.cmd_quantize import run_quantize

            reduced = run_quantize(
                fp32_path, output, quiet=as_json, precision="int8" if int8 else "fp16",
                calib=calib if int8 else None, calib_size=calib_size, val=data, max_drop=max_drop,
                force=force,
            )  # fmt: skip
    if as_json:
        out = report.to_dict()
        if int8 or fp16:
            out = {"fp32": out, "int8" if int8 else "fp16": reduced.to_dict()}
        typer.echo(json.dumps(out))


def register(app: typer.Typer) -> None:
    """Add ``edgeseg export`` to ``app``."""
    app.command("export")(export_command)
