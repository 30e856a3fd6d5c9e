"""What the report measures: accuracy of every model file on the validation split, size and cost, latency.

Accuracy comes from ``edgeseg.train.evaluate`` (PyTorch checkpoints) and ``evaluate_onnx`` (ONNX files
through ``edgeseg.runtime.Segmenter``), the functions behind ``edgeseg eval``, so the report's figures are
the ones ``edgeseg eval`` prints for the same files. Cost is ``edgeseg.models.complexity``; latency is
``edgeseg.bench.bench_models``, every file timed round-robin in one run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.data.config import DataConfig
from edgeseg.pipeline.config import BenchSettings

Log = Callable[[str], None]


@dataclass
class ModelFile:
    """One row of the report: an ONNX file and, for FP32 models, the checkpoint it was exported from.

    ``network`` is the checkpoint that defines the network's parameters and FLOPs (for INT8: its FP32
    source's checkpoint).
    """

    key: str
    label: str
    onnx: Path
    checkpoint: Path | None
    network: Path


def _clean(metrics: Any, classes: Sequence[str]) -> dict[str, Any]:
    out = metrics.to_dict(list(classes))
    out["per_class_iou"] = {
        k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
        for k, v in out["per_class_iou"].items()
    }
    return out


def evaluate_model(
    entry: ModelFile, val_set: Any, data_cfg: DataConfig, size: tuple[int, int]
) -> dict[str, Any]:
    """mIoU/pixel accuracy of the ONNX file (and of its checkpoint in PyTorch), parameters, GFLOPs, size.

    ``delta_miou`` is ONNX minus PyTorch over the whole validation split (None without a checkpoint).
    """
    import torch

    from edgeseg.checkpoint import load_checkpoint, model_from_checkpoint
    from edgeseg.models import complexity, describe_model
    from edgeseg.train.evaluate import evaluate, evaluate_onnx

    classes = list(val_set.classes)
    onnx_metrics = _clean(evaluate_onnx(entry.onnx, val_set, data_cfg, provider="cpu"), classes)
    ckpt = load_checkpoint(entry.network)
    model = model_from_checkpoint(ckpt)
    params, gflops = complexity(model, size)
    out: dict[str, Any] = {
        "label": entry.label,
        "onnx": str(entry.onnx),
        "checkpoint": str(entry.checkpoint) if entry.checkpoint else None,
        "model_name": ckpt["model"]["name"],
        "network": describe_model(ckpt["model"]["name"], ckpt["model"]["kwargs"]),
        "params": int(params),
        "gflops": float(gflops),
        "gflops_size": list(size),
        "file_size": entry.onnx.stat().st_size,
        "onnx_metrics": onnx_metrics,
        "miou": onnx_metrics["miou"],
        "pixel_acc": onnx_metrics["pixel_acc"],
        "torch_metrics": None,
        "delta_miou": None,
    }
    if entry.checkpoint is not None:
        with torch.no_grad():
            m = evaluate(
                model,
                val_set,
                data_cfg=data_cfg,
                mean=ckpt["mean"],
                std=ckpt["std"],
                device=torch.device("cpu"),
            )
        out["torch_metrics"] = _clean(m, classes)
        out["delta_miou"] = onnx_metrics["miou"] - m.miou
    return out


def bench_size(settings: BenchSettings, val_set: Any) -> tuple[int, int]:
    """The benchmark (and GFLOP) size: ``bench.size``, else the validation images' fixed or first size."""
    if settings.size is not None:
        return int(settings.size[0]), int(settings.size[1])
    fixed = getattr(val_set, "fixed_size", None)
    if fixed:
        return int(fixed[0]), int(fixed[1])
    image, _ = val_set[0]
    return int(image.shape[0]), int(image.shape[1])


def bench_files(
    files: dict[str, Path], size: tuple[int, int], settings: BenchSettings, log: Log | None = None
) -> dict[str, Any]:
    """Time every ONNX file with ONNX Runtime round-robin in one run; rows keyed like ``files``.

    Returns ``{"rows": {key: bench row}, "environment": ..., "settings": ...}``; a row has ``p50_ms``,
    ``p90_ms``, ``p99_ms``, ``mean_ms``, ``throughput_ips`` and the configuration.
    """
    from edgeseg.bench import bench_models
    from edgeseg.bench.render import environment

    paths = list(files.values())
    results, notes = bench_models(
        paths,
        sizes=[size],
        batches=[settings.batch],
        threads=[settings.threads],
        providers=[settings.provider],
        warmup=settings.warmup,
        runs=settings.runs,
        interleave=True,
        progress=log,
    )
    by_name = {p.stem: key for key, p in files.items()}
    rows = {by_name.get(r.config.model, r.config.model): r.to_row() for r in results}
    return {
        "rows": rows,
        "notes": list(notes),
        "environment": environment(settings.threads),
        "settings": {
            "size": list(size),
            "provider": settings.provider,
            "batch": settings.batch,
            "threads": settings.threads,
            "warmup": settings.warmup,
            "runs": settings.runs,
            "interleave": True,
        },
    }
