"""``edgeseg eval``: mIoU, pixel accuracy and per-class IoU of a checkpoint or an ONNX model; top-1 and
top-5 of a pretrained classifier (``edgeseg pretrain``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer


def eval_command(
    model: Annotated[Path, typer.Argument(help="A checkpoint (.pt) or an exported model (.onnx).")],
    data: Annotated[
        str | None,
        typer.Option("--data", help="Dataset folder or 'synthetic' (default: the model's own data)."),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split to evaluate on.")] = "val",
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Adjust data settings, e.g. --set data.synthetic_val=50 (repeatable)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"miou", "pixel_acc", "per_class_iou": {name: iou}}.')
    ] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (checkpoints).")] = (
        "auto"
    ),
    provider: Annotated[str, typer.Option("--provider", help="ONNX Runtime provider (ONNX models).")] = (
        "auto"
    ),
) -> None:
    """Evaluate a model on a dataset split: mIoU, pixel accuracy and a per-class IoU table.

    The data is read with the settings the model was trained and evaluated with (stored in its checkpoint
    and ONNX metadata; --data and --set change them), and the output says what it evaluated on.
    ONNX models run through edgeseg.runtime.Segmenter, so their figures compare line for line with those of
    the checkpoint they were exported from. Fractions are in [0, 1]; a class absent from both the labels and
    the predictions has no IoU (null) and does not count in the mean.

    A pretrained classifier (from edgeseg pretrain) gets top-1 and top-5 accuracy on an ImageFolder split
    (--json: {"top1", "top5", "images"}).
    """
    from edgeseg.train.evaluate import evaluate_file

    lines: list[str] = []
    ckpt = None
    if model.suffix.lower() != ".onnx":
        from edgeseg.checkpoint import load_checkpoint
        from edgeseg.models import is_classifier

        ckpt = load_checkpoint(model)
        if is_classifier(ckpt["model"]):
            _eval_classifier(model, ckpt, data, split, list(overrides or []), as_json, device)
            return
    metrics, classes = evaluate_file(
        model, data, split, overrides=list(overrides or []), device=device, provider=provider,
        log=lines.append, checkpoint=ckpt,
    )  # fmt: skip
    result = metrics.to_dict(classes)
    if as_json:
        typer.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{model.name}, {split} split")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name, iou in result["per_class_iou"].items():
        table.add_row(name, "—" if iou is None or math.isnan(iou) else f"{iou:.4f}")
    console = Console()
    for line in lines:
        console.print(line, highlight=False)
    console.print(table)
    console.print(f"mIoU {result['miou']:.4f}   pixel accuracy {result['pixel_acc']:.4f}", highlight=False)


def _eval_classifier(
    model: Path, ckpt: dict, data: str | None, split: str, overrides: list[str], as_json: bool, device: str
) -> None:
    from edgeseg.pretrain import evaluate_classifier_file

    lines: list[str] = []
    metrics, _ = evaluate_classifier_file(
        model, data, split, overrides=overrides, device=device, log=lines.append, checkpoint=ckpt
    )
    if as_json:
        typer.echo(json.dumps(metrics.to_dict()))
        return
    for line in lines:
        typer.echo(line)
    typer.echo(f"top-1 {metrics.top1:.4f}   top-5 {metrics.top5:.4f}   ({metrics.images} images)")


def register(app: typer.Typer) -> None:
    """Add ``edgeseg eval`` to ``app``."""
    app.command("eval")(eval_command)
