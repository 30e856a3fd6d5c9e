"""Writing the report folder: the three figures, then ``report.json`` and ``report.md`` (each atomically)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.fileio import write_text_atomic
from edgeseg.pipeline.config import PipelineRecipe
from edgeseg.pipeline.figures import ParetoPoint, figure_paths, miou_vs_latency, sample_grid, training_curves
from edgeseg.pipeline.report import LABELS, build_report, render_markdown
from edgeseg.pipeline.training import history


def sample_predictions(files: Mapping[str, Path], images: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Each model's label maps for ``images``, from ``edgeseg.runtime.Segmenter`` as an app would get them."""
    from edgeseg.runtime import Segmenter

    out = {}
    for key, path in files.items():
        segmenter = Segmenter(path, provider="cpu")
        out[key] = [segmenter.predict(image) for image in images]
    return out


def write_report(
    out_dir: Path,
    spec: PipelineRecipe,
    *,
    trainings: Mapping[str, Any],
    runs: Mapping[str, Path],
    exports: Mapping[str, Any],
    quantize: Mapping[str, Any] | None,
    models: Mapping[str, Any],
    bench: Mapping[str, Any],
    files: Mapping[str, Path],
    checkpoints: Mapping[str, Path],
    train_set: Any,
    val_set: Any,
    stages: Mapping[str, Any],
) -> list[Path]:
    """Draw the figures and write ``report.json`` and ``report.md`` in ``out_dir``; return the figure paths.

    ``runs``: model key → run folder of the models trained here (for the curves); ``files`` and
    ``checkpoints``: model key → its ONNX file and source checkpoint, where they are now.
    """
    folder = out_dir / "figures"
    paths = figure_paths(folder)
    training_curves({k: history(d) for k, d in runs.items()}, LABELS, paths["curves"])

    settings = bench["settings"]
    points = [
        ParetoPoint(k, LABELS[k], bench["rows"][k]["p50_ms"], m["miou"], m["gflops"])
        for k, m in models.items()
        if k in bench["rows"]
    ]
    threads = settings["threads"] or "default"
    height, width = settings["size"]
    provider = settings.get("provider", "cpu").upper()
    subtitle = (
        f"ONNX Runtime {provider}, {height}x{width}, batch {settings['batch']}, threads {threads}; "
        f"mIoU on {len(val_set)} validation images at their own size"
    )
    miou_vs_latency(points, subtitle, paths["pareto"])

    count = min(spec.section("report").samples, len(val_set))
    indices = sorted({int(i) for i in np.linspace(0, len(val_set) - 1, count).round()})
    pairs = [val_set[i] for i in indices]
    images = [np.asarray(p[0]) for p in pairs]
    sample_grid(
        images,
        [np.asarray(p[1]) for p in pairs],
        sample_predictions(files, images),
        LABELS,
        list(val_set.classes),
        list(val_set.palette),
        int(val_set.ignore_index),
        paths["samples"],
    )

    figures = {k: str(p.relative_to(out_dir)) for k, p in paths.items()}
    dataset = {
        "root": spec.recipe.data.root,
        "classes": list(val_set.classes),
        "train_images": len(train_set),
        "val_images": len(val_set),
        "val_split": spec.recipe.data.val_split,
    }
    training = {
        k: {
            f: v.get(f)
            for f in ("best_miou", "best_epoch", "epochs", "resumed", "reused", "teacher_miou")
            if f in v
        }
        for k, v in trainings.items()
    }
    report = build_report(
        title=spec.section("report").title,
        source=spec.source,
        recipe=spec.to_dict(),
        data=spec.recipe.data,
        dataset=dataset,
        models={
            k: {**v, "onnx": str(files[k]), "checkpoint": str(checkpoints[k]) if k in checkpoints else None}
            for k, v in models.items()
        },
        trainings=training,
        exports=exports,
        quantize=quantize,
        bench=bench,
        figures=figures,
        stages=stages,
        val_images=spec.section("export").val_images,
    )
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    write_text_atomic(out_dir / "report.md", render_markdown(report))
    return list(paths.values())
