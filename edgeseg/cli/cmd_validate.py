"""``edgeseg validate``: the parity gate alone, an ONNX model against the checkpoint it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.errors import InputError
from edgeseg.export.tolerances import DEFAULT_MAX_IMAGES, FP32_TOLERANCES


def _text(limit: float | None) -> str:
    """A default tolerance as the option takes it (``off`` for a check that is off)."""
    return "off" if limit is None else f"{limit:g}"


def parse_tolerance(text: str, option: str) -> float | None:
    """A tolerance value: a non-negative number, or ``off`` to skip that check."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{option} takes a number or 'off', not {text!r}") from None
    if value < 0:
        raise InputError(f"{option} must not be negative, got {text!r}")
    return value


def validate_command(
    model: Annotated[Path, typer.Argument(help="The ONNX model to check.")],
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="The edgeseg checkpoint it was exported from.")
    ],
    data: Annotated[
        str | None, typer.Option("--data", help="Real images: a dataset folder or 'synthetic' (val split).")
    ] = None,
    max_images: Annotated[
        int, typer.Option("--max-images", help="Validation images used from --data.")
    ] = DEFAULT_MAX_IMAGES,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Adjust --data's settings, e.g. --set data.synthetic_size=96 (repeatable)."
        ),
    ] = None,
    atol: Annotated[
        str, typer.Option("--atol", help="Largest absolute output difference, or 'off'.")
    ] = _text(FP32_TOLERANCES.max_abs),
    rtol: Annotated[
        str, typer.Option("--rtol", help="Largest difference relative to the output's magnitude, or 'off'.")
    ] = _text(FP32_TOLERANCES.max_rel),
    min_agreement: Annotated[
        str, typer.Option("--min-agreement", help="Least argmax agreement (fraction), or 'off'.")
    ] = _text(FP32_TOLERANCES.min_agreement),
    max_miou_delta: Annotated[
        str, typer.Option("--max-miou-delta", help="Largest |mIoU difference| (fraction), or 'off'.")
    ] = _text(FP32_TOLERANCES.max_miou_delta),
    runtimes: Annotated[
        list[str] | None,
        typer.Option(
            "--runtime",
            help="Run the file in onnxruntime, opencv (OpenCV DNN) or onnx-reference (repeatable; default "
            "onnxruntime). Each is gated against the checkpoint; the others also report label agreement with "
            "ONNX Runtime. One not installed is skipped, with the reason.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Compare an ONNX model with its PyTorch checkpoint: exit code 0 when it matches, 1 when not.

    Runs onnx.checker (full), then ONNX Runtime (CPU; or each --runtime) against PyTorch on random inputs
    at three sizes (odd, non-square, batch of 2) and, with --data, on real validation images: max absolute
    and relative output difference, argmax agreement, and the mIoU of both. The PyTorch side is wrapped as
    the file's metadata says (in-graph preprocessing, logits/softmax/argmax output), so like is compared
    with like. The JSON result lists the runtimes the file was checked in (checked_in) and those skipped.
    """
    from edgeseg.export import Tolerances
    from edgeseg.export.from_checkpoint import validate_checkpoint

    tolerances = Tolerances(
        max_abs=parse_tolerance(atol, "--atol"),
        max_rel=parse_tolerance(rtol, "--rtol"),
        min_agreement=parse_tolerance(min_agreement, "--min-agreement"),
        max_miou_delta=parse_tolerance(max_miou_delta, "--max-miou-delta"),
    )
    checks = validate_checkpoint(
        model,
        checkpoint,
        data=data,
        max_images=max_images,
        overrides=overrides or (),
        tolerances=tolerances,
        log=lambda note: typer.echo(note, err=True),
        runtimes=runtimes or ["onnxruntime"],
    )
    if as_json:
        typer.echo(json.dumps(checks.to_dict()))
        if not checks.passed:
            raise typer.Exit(1)
        return
    from rich.console import Console

    for check in checks.checks:
        if check.result is not None:
            Console().print(check.result.table())
    for line in checks.lines():
        typer.echo(f"{model}: {line}")
    if not checks.passed:
        from edgeseg.export import ParityFailed

        message = f"{model} does not match {checkpoint}: " + "; ".join(checks.failures())
        raise ParityFailed(message[:500], checks.primary)


def register(app: typer.Typer) -> None:
    """Add ``edgeseg validate`` to ``app``."""
    app.command("validate")(validate_command)
