"""``edgeseg quantize``: an FP32 ONNX model to INT8 (static, calibrated) or FP16, behind an accuracy gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg.quantize import defaults


def quantize_command(
    model: Annotated[Path, typer.Argument(help="The FP32 ONNX model (from edgeseg export).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the converted model.")],
    calib: Annotated[
        str | None,
        typer.Option("--calib", help="INT8 calibration data: a dataset folder or 'synthetic' (train split)."),
    ] = None,
    calib_size: Annotated[
        int, typer.Option("--calib-size", help="Calibration images.")
    ] = defaults.CALIB_SIZE,
    val: Annotated[
        str | None,
        typer.Option("--val", help="Validation data for the gate (default: the --calib data's val split)."),
    ] = None,
    val_size: Annotated[
        int, typer.Option("--val-size", help="At most this many validation images.")
    ] = defaults.VAL_SIZE,
    max_drop: Annotated[
        float, typer.Option("--max-drop", help="Largest mIoU loss allowed, in points (0-100 scale).")
    ] = defaults.MAX_DROP,
    method: Annotated[
        str, typer.Option("--method", help="Calibration method: minmax, entropy or percentile.")
    ] = defaults.METHOD,
    per_channel: Annotated[
        bool, typer.Option("--per-channel/--per-tensor", help="Weight scales per channel or tensor.")
    ] = True,
    reduce_range: Annotated[
        bool | None,
        typer.Option(
            "--reduce-range/--full-range",
            help="7-bit weights, avoiding saturation on CPUs without VNNI (default: on exactly there).",
        ),
    ] = None,
    max_float_nodes: Annotated[
        int, typer.Option("--max-float-nodes", help="Most sensitive nodes the gate may keep in float.")
    ] = defaults.MAX_FLOAT_NODES,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Convert to FP16 (GPU deployment) instead of INT8; no calibration.")
    ] = False,
    min_agreement: Annotated[
        float, typer.Option("--min-agreement", help="FP16: least argmax agreement with FP32 (fraction).")
    ] = defaults.MIN_AGREEMENT,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Quantize an ONNX model to INT8, or convert it to FP16, and keep it only if it stays accurate.

    INT8: ONNX Runtime static QDQ quantization calibrated on --calib images through the model's own
    preprocessing; FP32 and INT8 mIoU are measured on the validation images and, when INT8 loses more than
    --max-drop points, the most quantization-sensitive nodes are kept in float and it tries again. FP16:
    float16 weights and compute with float32 inputs, outputs, Resize and reductions, checked by argmax
    agreement (and mIoU with --val). A model that fails its gate is not written (exit code 1).
    """
    report = run_quantize(
        model,
        output,
        quiet=as_json,
        precision="fp16" if fp16 else "int8",
        calib=calib,
        calib_size=calib_size,
        val=val,
        val_size=val_size,
        max_drop=max_drop,
        method=method,
        per_channel=per_channel,
        reduce_range=reduce_range,
        max_float_nodes=max_float_nodes,
        min_agreement=min_agreement,
        force=force,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict()))


def run_quantize(model: Path, output: Path, *, quiet: bool, **options: Any) -> Any:
    """``edgeseg.quantize.quantize_file`` with progress on stderr and its result in two lines (unless
    ``quiet``); ``edgeseg export --int8/--fp16`` ends with it too."""
    from edgeseg.quantize.api import quantize_file

    say = None if quiet else (lambda msg: typer.echo(msg, err=True))
    report = quantize_file(model, output, progress=say, **options)
    if not quiet:
        typer.echo(report.summary())
        typer.echo(f"wrote {report.path} in {report.seconds:.1f} s")
    return report


def register(app: typer.Typer) -> None:
    """Add ``edgeseg quantize`` to ``app``."""
    app.command("quantize")(quantize_command)
