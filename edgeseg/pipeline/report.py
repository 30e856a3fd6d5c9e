"""``report.json`` and ``report.md``: one table of every model, parity, the INT8 gate, figures, how to check.

:func:`build_report` gathers the stages' results into one JSON-able dict; :func:`render_markdown` turns that
dict (and nothing else) into markdown, so both files always hold the same numbers.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from edgeseg import __version__
from edgeseg.data.config import SYNTHETIC, DataConfig

MODEL_ORDER = ("teacher", "student", "distilled", "int8")
LABELS = {
    "teacher": "teacher",
    "student": "student alone",
    "distilled": "distilled student",
    "int8": "distilled student INT8",
}


TRAINING_ONLY = (
    "root", "train_split", "crop_size", "batch_size", "val_batch_size", "workers", "synthetic_train", "mean",
    "std",
)  # fmt: skip
"""Data settings that do not change which validation images are read, nor their metrics."""


def data_overrides(cfg: DataConfig) -> list[str]:
    """``--set data.key=value`` arguments for the data settings that differ from the defaults and decide the
    validation images (the root and the training-only settings aside)."""
    defaults = asdict(DataConfig())
    args: list[str] = []
    for key, value in asdict(cfg).items():
        if key in TRAINING_ONLY or value == defaults[key]:
            continue
        if key.startswith("synthetic_") and cfg.root != SYNTHETIC:
            continue
        text = (
            value
            if isinstance(value, str)
            else json.dumps(list(value) if isinstance(value, tuple) else value)
        )
        args += ["--set", f"data.{key}={text}"]
    return args


def reproduce_commands(models: Mapping[str, Any], data: DataConfig, val_images: int) -> dict[str, Any]:
    """``edgeseg eval``/``validate`` argument lists that recompute the report's figures for each file."""
    sets = data_overrides(data)
    out: dict[str, Any] = {"eval_onnx": {}, "eval_checkpoint": {}, "validate": {}}
    for key, m in models.items():
        out["eval_onnx"][key] = [
            "eval",
            m["onnx"],
            "--data",
            data.root,
            "--split",
            data.val_split,
            "--json",
            *sets,
        ]
        if m.get("checkpoint"):
            out["eval_checkpoint"][key] = ["eval", m["checkpoint"], "--split", data.val_split, "--json"]
            out["validate"][key] = [
                "validate",
                m["onnx"],
                "--checkpoint",
                m["checkpoint"],
                "--data",
                data.root,
                "--max-images",
                str(val_images),
                "--json",
                *sets,
            ]
    return out


def distillation_summary(models: Mapping[str, Any]) -> dict[str, Any] | None:
    """Teacher, student-alone and distilled mIoU, the gain and the share of the teacher–student gap closed."""
    if not all(k in models for k in ("teacher", "student", "distilled")):
        return None
    t, s, d = (models[k]["miou"] for k in ("teacher", "student", "distilled"))
    gap = t - s
    return {
        "teacher_miou": t,
        "student_miou": s,
        "distilled_miou": d,
        "gain": d - s,
        "gap_closed": (d - s) / gap if gap > 0 else None,
    }


def build_report(
    *,
    title: str,
    source: str,
    recipe: dict[str, Any],
    data: DataConfig,
    dataset: Mapping[str, Any],
    models: dict[str, dict[str, Any]],
    trainings: Mapping[str, Any],
    exports: Mapping[str, Any],
    quantize: Mapping[str, Any] | None,
    bench: Mapping[str, Any],
    figures: Mapping[str, str],
    stages: Mapping[str, Any],
    val_images: int,
) -> dict[str, Any]:
    """The report as a JSON-able dict: ``models`` (one entry per model file, in report order) and the rest."""
    rows: dict[str, dict[str, Any]] = {}
    for key in MODEL_ORDER:
        if key not in models:
            continue
        row = dict(models[key])
        timing = bench["rows"].get(key, {})
        row["latency"] = {
            k: timing.get(k) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_ips")
        }
        row["parity"] = (
            (quantize or {}).get("parity") if key == "int8" else exports.get(key, {}).get("parity")
        )
        row["parity_reference"] = "distilled FP32 ONNX" if key == "int8" else "PyTorch checkpoint"
        if key == "int8":
            row["delta_miou"] = row["miou"] - models["distilled"]["miou"]
        row["training"] = trainings.get(key)
        rows[key] = row
    return {
        "title": title,
        "edgeseg_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe_source": source,
        "recipe": recipe,
        "data": dict(dataset),
        "models": rows,
        "distillation": distillation_summary(rows),
        "int8": dict(quantize)
        if quantize is not None
        else {"passed": None, "message": "quantize.enabled is false"},
        "bench": {k: bench[k] for k in ("settings", "environment", "notes") if k in bench},
        "figures": dict(figures),
        "stages": dict(stages),
        "reproduce": reproduce_commands(rows, data, val_images),
    }


def _num(value: float | None, spec: str, scale: float = 1.0) -> str:
    if value is None:
        return "–"
    text = format(value * scale, spec)
    return format(0.0, spec) if float(text.rstrip("%")) == 0 else text  # no "-0.000"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _distill_method(settings: Mapping[str, Any] | None) -> str:
    """How the student was distilled, from the recipe's ``distill`` section (empty when it is absent)."""
    if not settings:
        return ""
    weights = settings.get("weights") or {}
    names = {
        "ce": ("labels", None), "kd": ("pixel KD", "kd_tau"), "cwd": ("CWD", "cwd_tau"),
        "feature": ("feature KD", None), "relation": ("relation KD", "relation_tau"),
    }  # fmt: skip
    terms = []
    for key, (label, tau) in names.items():
        weight = weights.get(key, 0)
        if weight:
            detail = f" ×{weight:g}" if key != "ce" or weight != 1 else ""
            detail += f" (τ {settings[tau]:g})" if tau and tau in settings else ""
            terms.append(label + detail)
    text = "; losses: " + ", ".join(terms) if terms else ""
    if settings.get("student_init") == "teacher":
        text += "; student initialised from the teacher's weights (weight selection)"
    return text


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown: summary, model table, parity table, figures, INT8 gate, settings, commands."""
    models = report["models"]
    bench = report["bench"].get("settings", {})
    size = "x".join(map(str, bench.get("size", [])))
    threads = bench.get("threads") or "default"
    lines = [f"# {report['title']}", ""]
    lines.append(
        f"edgeseg {report['edgeseg_version']}, {report['created']}; recipe `{report['recipe_source']}`; "
        f"data `{report['data']['root']}` ({report['data']['train_images']} training, "
        f"{report['data']['val_images']} validation images, {len(report['data']['classes'])} classes)."
    )
    lines += ["", "## Summary", ""]
    d = report["distillation"]
    if d is not None:
        closed = (
            ""
            if d["gap_closed"] is None
            else f", closing {100 * d['gap_closed']:.0f} % of the teacher–student gap"
        )
        lines.append(
            f"- Distillation: the student alone reaches {100 * d['student_miou']:.2f} % mIoU, distilled "
            f"{100 * d['distilled_miou']:.2f} % ({100 * d['gain']:+.2f} points{closed}; teacher "
            f"{100 * d['teacher_miou']:.2f} %)" + _distill_method(report["recipe"].get("distill")) + "."
        )
    lines.append("- INT8: " + _int8_line(report["int8"]))
    if "teacher" in models and "distilled" in models:
        t, s = models["teacher"], models["distilled"]
        lines.append(
            f"- Teacher against distilled student: {_ratio(t['params'], s['params'])} the parameters, "
            f"{_ratio(t['gflops'], s['gflops'])} the GFLOPs, "
            f"{_ratio(t['latency']['p50_ms'], s['latency']['p50_ms'])} the latency "
            f"(ONNX Runtime, {bench.get('provider', 'cpu').upper()}, {size}, batch {bench.get('batch')}, "
            f"threads {threads})."
        )
    if "int8" in models and "distilled" in models:
        q, s = models["int8"], models["distilled"]
        speedup = _ratio(s["latency"]["p50_ms"], q["latency"]["p50_ms"])
        lines.append(
            f"- INT8 against FP32 distilled student: p50 {q['latency']['p50_ms']:.2f} ms against "
            f"{s['latency']['p50_ms']:.2f} ms (speed-up {speedup}), "
            f"file {_ratio(s['file_size'], q['file_size'])} smaller, "
            f"{100 * (q['miou'] - s['miou']):+.2f} mIoU points on the whole validation split."
        )
    lines += [
        "",
        "## Models",
        "",
        "Accuracy on the validation split through ONNX Runtime (`edgeseg eval`); GFLOPs "
        f"(multiply-accumulates × 1e-9) and latency at {size}, batch {bench.get('batch')}, "
        f"{threads} threads, {bench.get('runs')} timed runs each, all models round-robin in one run.",
        "",
        "| model | network | mIoU | pixel acc. | params | GFLOPs | file | p50 ms | p90 ms | img/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in models.values():
        lat = m["latency"]
        lines.append(
            f"| {m['label']} | {m.get('network', m['model_name'])} | {_num(m['miou'], '.2f', 100)} | "
            f"{_num(m['pixel_acc'], '.2f', 100)} | {m['params'] / 1e6:.3f} M | {m['gflops']:.3f} | "
            f"{_size(m['file_size'])} | {_num(lat['p50_ms'], '.2f')} | {_num(lat['p90_ms'], '.2f')} | "
            f"{_num(lat['throughput_ips'], '.1f')} |"
        )
    lines += [
        "",
        "## Parity",
        "",
        "FP32 files against their PyTorch checkpoint, INT8 against its FP32 ONNX model: largest logit "
        "difference and argmax agreement over random inputs and the first validation images (`edgeseg "
        "validate`), ΔmIoU over the whole validation split.",
        "",
        "| model | reference | max abs diff | argmax agreement | ΔmIoU (points) | gate |",
        "|---|---|---:|---:|---:|---|",
    ]
    for m in models.values():
        p = m.get("parity") or {}
        verdict = (
            "passed" if p.get("passed") else ("–" if m["parity_reference"].endswith("ONNX") else "FAILED")
        )
        lines.append(
            f"| {m['label']} | {m['parity_reference']} | {_num(p.get('max_abs_diff'), '.2e')} | "
            f"{_num(p.get('agreement'), '.3f', 100)} % | {_num(m.get('delta_miou'), '+.3f', 100)} | "
            f"{verdict} |"
        )
    lines += ["", "## Figures", ""]
    captions = {
        "curves": "Training curves",
        "pareto": "mIoU against latency",
        "samples": "Validation samples",
    }
    for key, path in report["figures"].items():
        lines += [f"![{captions.get(key, key)}]({path})", ""]
    lines += _int8_section(report["int8"])
    lines += _environment_section(report)
    lines += _reproduce_section(report["reproduce"])
    return "\n".join(lines).rstrip() + "\n"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.1f}×"


def _int8_line(q: Mapping[str, Any]) -> str:
    if q.get("passed") is None:
        return "not run (quantize.enabled is false)."
    if not q["passed"]:
        return f"the accuracy gate refused the INT8 model, so the report has no INT8 row: {q['message']}"
    g = q["gate"]
    return (
        f"mIoU {g['miou_fp32']:.2f} → {g['miou_int8']:.2f} on {g['val_images']} validation images "
        f"(drop {g['drop']:+.2f} points, at most {g['max_drop']:.2f} allowed); "
        f"{len(g['float_nodes'])} nodes kept in float."
    )


def _int8_section(q: Mapping[str, Any]) -> list[str]:
    lines = ["## INT8 accuracy gate", "", _int8_line(q), ""]
    if q.get("passed"):
        g = q["gate"]
        lines += [
            f"Static QDQ quantization ({g['method']}, per-channel {str(g['per_channel']).lower()}, "
            f"reduce-range {str(g['reduce_range']).lower()}), calibrated on {g['calib_images']} training "
            f"images at {g['calib_size'][0]}x{g['calib_size'][1]}.",
            "",
        ]
    return lines


def _environment_section(report: Mapping[str, Any]) -> list[str]:
    env = report["bench"].get("environment", {})
    ort = env.get("onnxruntime", {})
    lines = [
        "## Environment and stages",
        "",
        f"Measured on: {env['description']}; Python {env.get('python', '?')}."
        if "description" in env
        else f"CPU: {env.get('cpu', '?')} ({env.get('cpu_count', '?')} logical cores); ONNX Runtime "
        f"{ort.get('version', '?')}; Python {env.get('python', '?')}.",
        "",
        "| stage | time (s) | |",
        "|---|---:|---|",
    ]
    for name, s in report["stages"].items():
        lines.append(
            f"| {name} | {s['seconds']:.1f} | {'done earlier, reused' if s.get('skipped') else ''} |"
        )
    return lines + [""]


def _reproduce_section(commands: Mapping[str, Mapping[str, list[str]]]) -> list[str]:
    lines = ["## Check the figures", "", "```bash"]
    for group in ("eval_onnx", "eval_checkpoint", "validate"):
        for argv in commands.get(group, {}).values():
            lines.append(" ".join(shlex.quote(a) for a in ["edgeseg", *argv]))
    return lines + ["```", ""]
