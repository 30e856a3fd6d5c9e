"""The parity gate: an ONNX file against its reference (the PyTorch model, or another ONNX file).

Checks, in order: ``onnx.checker`` (full, with shape inference); ONNX Runtime (CPU; or OpenCV DNN or onnx's
reference evaluator, ``runtime``) against the reference
on random inputs at several sizes (one odd, one non-square, one batch of 2); and, given samples, on real
images: logit differences, argmax agreement, and the mIoU of both against the masks. The reference is
wrapped from the file's own metadata (in-graph preprocessing, output kind), so like is compared with like; a
coarse export's logits (and a coarse ONNX reference's) are first upsampled as the runtime upsamples them.

Every tolerance can be switched off (``None``): INT8/FP16 exports are judged by agreement and mIoU only.
Agreement and mIoU are fractions in [0, 1]; ``max_rel_diff`` is the largest absolute difference divided
by the largest magnitude of the reference output.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeseg.errors import GateFailed, InputError
from edgeseg.export.check import check_graph
from edgeseg.export.feeds import RANDOM_SIZES, Feed, random_feeds, sample_feeds
from edgeseg.export.runtimes import Runner, check_runtime, runtime_runner
from edgeseg.export.tolerances import Tolerances
from edgeseg.metrics import confusion_matrix, metrics_from_confusion
from edgeseg.runtime.metadata import ModelMetadata
from edgeseg.runtime.model_io import class_count
from edgeseg.runtime.ops import resize_bilinear

LABEL_VALUES = 256
"""Label values a model that does not say its class count may return (uint8 labels)."""


@dataclass
class CheckRow:
    """One line of the parity report."""

    name: str
    shape: str = ""
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    agreement: float | None = None
    passed: bool = True
    note: str = ""


@dataclass
class ValidationResult:
    """Outcome of :func:`validate_onnx`; summary figures are the worst over all checks."""

    passed: bool
    max_abs_diff: float | None
    max_rel_diff: float | None
    agreement: float | None
    miou_torch: float | None
    miou_onnx: float | None
    rows: list[CheckRow]
    tolerances: Tolerances
    failures: list[str] = field(default_factory=list)
    runtime: str = "onnxruntime"

    @property
    def miou_delta(self) -> float | None:
        """|mIoU(reference) − mIoU(ONNX)|, None without data."""
        if self.miou_torch is None or self.miou_onnx is None:
            return None
        return abs(self.miou_torch - self.miou_onnx)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary with every check row and the tolerances used."""
        return {
            "passed": self.passed,
            "runtime": self.runtime,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "agreement": self.agreement,
            "miou_torch": self.miou_torch,
            "miou_onnx": self.miou_onnx,
            "miou_delta": self.miou_delta,
            "failures": list(self.failures),
            "checks": [dataclasses.asdict(r) for r in self.rows],
            "tolerances": dataclasses.asdict(self.tolerances),
        }

    def summary(self) -> str:
        """One line: verdict, worst logit difference, agreement, and mIoU of both when measured."""
        parts = ["passed" if self.passed else "FAILED"]
        if self.max_abs_diff is not None:
            parts.append(f"max |Δ| {self.max_abs_diff:.2e}")
        if self.agreement is not None:
            parts.append(f"agreement {100 * self.agreement:.3f} %")
        if self.miou_torch is not None and self.miou_onnx is not None:
            parts.append(f"mIoU torch {self.miou_torch:.4f} / onnx {self.miou_onnx:.4f}")
        return ", ".join(parts)

    def table(self) -> Any:
        """A rich Table of the checks (rich imported on demand)."""
        from rich.table import Table

        def fmt(value: float | None, spec: str) -> str:
            return "–" if value is None else format(value, spec)

        verdict = "passed" if self.passed else "FAILED"
        table = Table(title=f"ONNX parity in {self.runtime} {verdict}")
        for column in ("check", "max |Δ|", "agreement", "result"):
            table.add_column(column, no_wrap=True)
        table.add_column("note")
        for row in self.rows:
            agreement = "–" if row.agreement is None else f"{100 * row.agreement:.3f} %"
            verdict = "[green]ok[/]" if row.passed else "[red]FAIL[/]"
            note = row.note or (row.shape if row.name == "real images" else "")
            table.add_row(row.name, fmt(row.max_abs_diff, ".2e"), agreement, verdict, note)
        return table


class ParityFailed(GateFailed):
    """The parity gate failed; ``result`` holds every check for a report."""

    def __init__(self, message: str, result: ValidationResult) -> None:
        super().__init__(message)
        self.result = result


def _upsampled(run: Runner, meta: ModelMetadata) -> Runner:
    """For a coarse export: its logits upsampled as the runtime does and cropped to the input's size."""

    def upsample(x: np.ndarray) -> np.ndarray:
        height, width = x.shape[1:3] if meta.input_layout == "NHWC" else x.shape[2:4]
        factor = meta.upsample
        return np.stack(
            [resize_bilinear(o, o.shape[1] * factor, o.shape[2] * factor)[:, :height, :width] for o in run(x)]
        )

    return upsample


def _torch_runner(module: Any, meta: ModelMetadata, output_key: str | int | None, num_classes: int) -> Runner:
    import torch

    from edgeseg.export.wrappers import ExportWrapper

    wrapper = ExportWrapper(
        module,
        output=meta.output,
        preprocess=meta.preprocess == "graph",
        mean=meta.mean,
        std=meta.std,
        output_key=output_key,
        num_classes=num_classes,
    )
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    wrapper.to(device)

    def run(x: np.ndarray) -> np.ndarray:
        was_training = module.training
        module.eval()
        try:
            with torch.inference_mode():
                return wrapper(torch.from_numpy(x).to(device)).cpu().numpy()
        finally:
            module.train(was_training)

    return run


def _reference_runner(
    reference: Any, meta: ModelMetadata, output_key: str | int | None, num_classes: int
) -> Runner:
    if isinstance(reference, (str, os.PathLike, onnx.ModelProto)):
        proto = reference if isinstance(reference, onnx.ModelProto) else _load(reference)
        ref_meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
        run = runtime_runner("onnxruntime", reference)[0]  # a path goes to ONNX Runtime as that path
        return _upsampled(run, ref_meta) if ref_meta.upsample > 1 else run
    if hasattr(reference, "parameters") and hasattr(reference, "eval"):
        return _torch_runner(reference, meta, output_key, num_classes)
    if callable(reference):
        return reference
    raise InputError(
        f"reference must be an nn.Module, an ONNX path or a callable, not {type(reference).__name__}"
    )


def _labels(output: np.ndarray, kind: str) -> np.ndarray:
    return output if kind == "argmax" else output.argmax(axis=1)


def _compare(feed: Feed, ref: np.ndarray, got: np.ndarray, kind: str, tol: Tolerances) -> CheckRow:
    row = CheckRow(feed.name, "x".join(map(str, feed.array.shape)))
    if ref.shape != got.shape:
        row.passed, row.note = False, f"output shape {got.shape} != reference {ref.shape}"
        return row
    if feed.crop is not None:
        h, w = feed.crop
        ref, got = ref[..., :h, :w], got[..., :h, :w]
    if kind != "argmax":
        if not np.all(np.isfinite(got)):
            row.passed, row.note = False, "non-finite values in the ONNX output"
            return row
        diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
        row.max_abs_diff = float(diff.max()) if diff.size else 0.0
        row.max_rel_diff = row.max_abs_diff / max(float(np.abs(ref).max()) if ref.size else 0.0, 1e-12)
    row.agreement = float(np.mean(_labels(ref, kind) == _labels(got, kind))) if ref.size else 1.0
    failed = []
    if tol.max_abs is not None and row.max_abs_diff is not None and row.max_abs_diff > tol.max_abs:
        failed.append(f"max |Δ| > {tol.max_abs:g}")
    if tol.max_rel is not None and row.max_rel_diff is not None and row.max_rel_diff > tol.max_rel:
        failed.append(f"rel > {tol.max_rel:g}")
    if tol.min_agreement is not None and row.agreement < tol.min_agreement:
        failed.append(f"agreement < {100 * tol.min_agreement:g} %")
    row.passed, row.note = not failed, "; ".join(failed)
    return row


def _merge(rows: list[CheckRow], name: str, weights: list[int]) -> CheckRow:
    """Pool the per-image rows of real data into one row (agreement weighted by pixels)."""
    diffs = [r.max_abs_diff for r in rows if r.max_abs_diff is not None]
    rels = [r.max_rel_diff for r in rows if r.max_rel_diff is not None]
    agreements = [(r.agreement, w) for r, w in zip(rows, weights, strict=True) if r.agreement is not None]
    pixels = sum(w for _, w in agreements)
    return CheckRow(
        name=name,
        shape=f"{len(rows)} images",
        max_abs_diff=max(diffs) if diffs else None,
        max_rel_diff=max(rels) if rels else None,
        agreement=sum(a * w for a, w in agreements) / pixels if pixels else None,
        passed=all(r.passed for r in rows),
        note="; ".join(sorted({f"{r.name}: {r.note}" for r in rows if r.note}))[:300],
    )


def validate_onnx(
    onnx_model: str | os.PathLike | onnx.ModelProto,
    reference: Any,
    *,
    metadata: ModelMetadata | None = None,
    output_key: str | int | None = None,
    samples: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
    num_classes: int | None = None,
    sizes: tuple[tuple[int, int, int], ...] = RANDOM_SIZES,
    tolerances: Tolerances | None = None,
    seed: int = 0,
    raise_on_failure: bool = False,
    runtime: str = "onnxruntime",
    runner: tuple[Any, list[object], list[object]] | None = None,
    check: bool = True,
) -> ValidationResult:
    """Compare an ONNX model with ``reference`` and return every check.

    ``reference`` is the bare PyTorch model (wrapped here from the file's metadata, or ``metadata``), an
    ONNX path/proto with the same inputs and outputs, or a callable taking and returning numpy arrays.
    ``samples`` are (uint8 H×W×3 image, H×W mask) pairs for the real-image and mIoU checks. ``runtime``
    runs the file under test (``edgeseg.export.runtimes.RUNTIMES``; a reference ONNX file always runs in ONNX
    Runtime) and is recorded in the result; a runtime not installed raises :class:`RuntimeUnavailable`. With
    ``raise_on_failure`` a failure raises :class:`ParityFailed` (exit code 1) carrying the result.
    ``runner``: the file already opened in ``runtime`` (:func:`~edgeseg.export.runtimes.runtime_runner`'s
    result); ``check=False`` skips ``onnx.checker`` for a graph the caller has checked.
    """
    check_runtime(runtime)
    tol = tolerances or Tolerances()
    proto = onnx_model if isinstance(onnx_model, onnx.ModelProto) else _load(onnx_model)
    meta = metadata or ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    rows = [CheckRow("onnx.checker (full)")] if check else []
    try:
        if check:
            check_graph(proto)
    except GateFailed as err:
        rows[0].passed, rows[0].note = False, str(err)
    try:
        run_onnx, input_shape, output_shape = runner or runtime_runner(runtime, proto)
    except Exception as err:  # a graph the runtime cannot load fails the gate, it is not a crash
        note = (str(err).splitlines() or [type(err).__name__])[0][:300]
        rows.append(CheckRow(f"{runtime} session", passed=False, note=note))
        return _finish(rows, tol, None, None, raise_on_failure, runtime)
    if meta.upsample > 1:
        run_onnx = _upsampled(run_onnx, meta)
    n_classes = num_classes or class_count(meta, output_shape) or LABEL_VALUES
    run_ref = _reference_runner(reference, meta, output_key, n_classes)
    for feed in random_feeds(meta, input_shape, sizes, seed):
        rows.append(_compare(feed, run_ref(feed.array), run_onnx(feed.array), meta.output, tol))
    if samples is None:
        return _finish(rows, tol, None, None, raise_on_failure, runtime)
    image_rows, weights = [], []
    cms: dict[str, np.ndarray] = {}
    for feed in sample_feeds(samples, meta, input_shape):
        ref, got = run_ref(feed.array), run_onnx(feed.array)
        row = _compare(feed, ref, got, meta.output, tol)
        image_rows.append(row)
        weights.append(int(np.prod(feed.crop)))
        if ref.shape != got.shape:
            continue
        h, w = feed.crop
        for key, out in (("torch", ref), ("onnx", got)):
            pred = _labels(out, meta.output)[..., :h, :w]
            cm = confusion_matrix(pred, feed.masks, n_classes, meta.ignore_index)
            cms[key] = cm if key not in cms else cms[key] + cm
    if not image_rows:
        raise InputError("validation data gave no images")
    rows.append(_merge(image_rows, "real images", weights))
    miou_torch = metrics_from_confusion(cms["torch"]).miou if "torch" in cms else None
    miou_onnx = metrics_from_confusion(cms["onnx"]).miou if "onnx" in cms else None
    rows.append(_miou_row(miou_torch, miou_onnx, tol))
    return _finish(rows, tol, miou_torch, miou_onnx, raise_on_failure, runtime)


def _miou_row(miou_torch: float | None, miou_onnx: float | None, tol: Tolerances) -> CheckRow:
    row = CheckRow("mIoU", shape="real images")
    if miou_torch is None or miou_onnx is None:
        row.passed, row.note = False, "no comparable predictions"
        return row
    delta = abs(miou_torch - miou_onnx)
    row.note = f"torch {miou_torch:.4f}, onnx {miou_onnx:.4f}, |Δ| {delta:.4f}"
    if tol.max_miou_delta is not None and delta > tol.max_miou_delta:
        row.passed = False
        row.note += f" > {tol.max_miou_delta:g}"
    return row


def _finish(
    rows: list[CheckRow],
    tol: Tolerances,
    miou_torch: float | None,
    miou_onnx: float | None,
    raise_on_failure: bool,
    runtime: str = "onnxruntime",
) -> ValidationResult:
    def worst(values: list[float | None], pick: Callable) -> float | None:
        present = [v for v in values if v is not None]
        return pick(present) if present else None

    failures = [f"{r.name}: {r.note}" if r.note else r.name for r in rows if not r.passed]
    result = ValidationResult(
        passed=not failures,
        max_abs_diff=worst([r.max_abs_diff for r in rows], max),
        max_rel_diff=worst([r.max_rel_diff for r in rows], max),
        agreement=worst([r.agreement for r in rows], min),
        miou_torch=miou_torch,
        miou_onnx=miou_onnx,
        rows=rows,
        tolerances=tol,
        failures=failures,
        runtime=runtime,
    )
    if raise_on_failure and not result.passed:
        raise ParityFailed("ONNX parity check failed: " + "; ".join(failures)[:500], result)
    return result


def _load(path: str | os.PathLike) -> onnx.ModelProto:
    from edgeseg.export.info import load_onnx

    return load_onnx(Path(path))
