"""The parity gate in several runtimes: one ONNX file against its reference in each runtime asked for, and
against itself in ONNX Runtime (label agreement), recording which runtimes it was checked in."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from edgeseg.errors import InputError
from edgeseg.export.runtimes import RUNTIMES, RuntimeUnavailable, check_runtime, runtime_runner
from edgeseg.export.tolerances import NO_LIMITS
from edgeseg.export.validate import ValidationResult, validate_onnx


@dataclass
class RuntimeCheck:
    """One runtime's verdicts: against the reference, and (other runtimes) against ONNX Runtime."""

    runtime: str
    result: ValidationResult | None = None
    vs_onnxruntime: ValidationResult | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Figures of this runtime, or why it was skipped."""
        if self.result is None:
            return {"skipped": self.skipped}
        out = {k: self.result.to_dict()[k] for k in ("passed", "max_abs_diff", "agreement", "miou_onnx")}
        out["failures"] = list(self.result.failures)
        if self.vs_onnxruntime is not None:
            out["agreement_vs_onnxruntime"] = self.vs_onnxruntime.agreement
            out["max_abs_diff_vs_onnxruntime"] = self.vs_onnxruntime.max_abs_diff
        return out


@dataclass
class CrossCheck:
    """Outcome of :func:`validate_in_runtimes`; passes when every runtime that ran passes."""

    checks: list[RuntimeCheck] = field(default_factory=list)

    @property
    def checked_in(self) -> list[str]:
        """The runtimes the file ran in (skipped ones left out)."""
        return [c.runtime for c in self.checks if c.result is not None]

    @property
    def passed(self) -> bool:
        """Every runtime that ran passed, and at least one ran."""
        ran = [c.result for c in self.checks if c.result is not None]
        return bool(ran) and all(r.passed for r in ran)

    @property
    def primary(self) -> ValidationResult | None:
        """The first runtime's result (ONNX Runtime's when it was asked for first)."""
        return next((c.result for c in self.checks if c.result is not None), None)

    def failures(self) -> list[str]:
        """Each failed check as ``runtime: check: why``; a single entry when no runtime could run."""
        if self.primary is None:
            return ["no runtime to check the file in: " + "; ".join(self.lines())]
        return [f"{c.runtime}: {f}" for c in self.checks if c.result is not None for f in c.result.failures]

    def to_dict(self) -> dict[str, Any]:
        """The primary result's fields, then ``checked_in``, ``skipped`` and per-runtime figures."""
        out = self.primary.to_dict() if self.primary is not None else {}
        out["passed"] = self.passed
        out["checked_in"] = self.checked_in
        out["skipped"] = {c.runtime: c.skipped for c in self.checks if c.result is None}
        out["runtimes"] = {c.runtime: c.to_dict() for c in self.checks}
        return out

    def lines(self) -> list[str]:
        """One line per runtime: verdict against the reference, labels against ONNX Runtime, or skipped."""
        out = []
        for c in self.checks:
            if c.result is None:
                out.append(f"{c.runtime}: skipped, {c.skipped}")
                continue
            line = f"{c.runtime}: {c.result.summary()}"
            if c.vs_onnxruntime is not None and c.vs_onnxruntime.agreement is not None:
                share = 100 * c.vs_onnxruntime.agreement
                line += f"; labels agree with ONNX Runtime on {share:.3f} % of pixels"
            out.append(line)
        return out


def validate_in_runtimes(
    onnx_model: str | os.PathLike | onnx.ModelProto,
    reference: Any,
    runtimes: Sequence[str] = ("onnxruntime",),
    *,
    samples: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
    **kwargs: Any,
) -> CrossCheck:
    """:func:`validate_onnx` of ``onnx_model`` against ``reference`` in each of ``runtimes``; in every runtime
    but ONNX Runtime, also the file against itself in ONNX Runtime (label agreement and logit difference, no
    limits). A runtime not installed is recorded as skipped with the reason; an unknown name is an error."""
    names = list(dict.fromkeys(runtimes))
    unknown = [name for name in names if name not in RUNTIMES]
    if unknown or not names:
        given = ", ".join(map(repr, unknown)) or "(none)"
        raise InputError(f"unknown runtime {given}; choose from {', '.join(RUNTIMES)}")
    proto = onnx_model if isinstance(onnx_model, onnx.ModelProto) else onnx.load(os.fspath(onnx_model))
    pairs = list(samples) if samples is not None else None
    checks = CrossCheck()
    for name in names:
        try:
            check_runtime(name)
        except RuntimeUnavailable as err:
            checks.checks.append(RuntimeCheck(name, skipped=str(err)))
            continue
        if name == "onnxruntime":
            result = validate_onnx(proto, reference, samples=pairs, runtime=name, **kwargs)
            checks.checks.append(RuntimeCheck(name, result, None))
            continue
        try:  # opened once: both comparisons feed it the same inputs, which it runs once
            runner = _remembered(runtime_runner(name, proto))
        except Exception:  # validate_onnx records why the runtime cannot load the file
            runner = None
        result = validate_onnx(proto, reference, samples=pairs, runtime=name, runner=runner, **kwargs)
        gate_only = ("tolerances", "raise_on_failure", "output_key")
        plain = {k: v for k, v in kwargs.items() if k not in gate_only}
        versus = validate_onnx(
            proto, proto, samples=pairs, runtime=name, tolerances=NO_LIMITS, runner=runner,
            check=runner is None, **plain,
        )  # fmt: skip
        checks.checks.append(RuntimeCheck(name, result, versus))
    return checks


def _remembered(runner: tuple[Any, list[object], list[object]]) -> tuple[Any, list[object], list[object]]:
    """``runner`` with its function answering a repeated input from memory."""
    run, input_shape, output_shape = runner
    seen: dict[tuple, np.ndarray] = {}

    def run_once(x: np.ndarray) -> np.ndarray:
        key = (x.shape, x.dtype.str, x.tobytes())
        if key not in seen:
            seen[key] = run(x)
        return seen[key]

    return run_once, input_shape, output_shape
