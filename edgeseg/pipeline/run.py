"""``run_pipeline``: teacher → student alone → distilled student → ONNX → INT8 → evaluation → bench → report.

Output folder::

    OUT/pipeline.yaml                 the resolved recipe
    OUT/runs/{teacher,student,distilled}/   training runs (best.pt, last.pt, metrics.jsonl, recipe.yaml)
    OUT/models/{teacher,student,distilled,distilled_int8}.onnx
    OUT/figures/{training_curves,miou_vs_latency,samples}.png
    OUT/report.md, OUT/report.json
    OUT/stages/<stage>.json           done-markers (see ``edgeseg.pipeline.stages``)

A rerun skips every stage whose marker matches (settings and input files unchanged) and resumes a training
stage that was killed from its ``last.pt``. When the INT8 accuracy gate fails, the pipeline goes on without
the INT8 model, the report says why, and the exit code stays 0 unless ``quantize.required`` is true (then
:class:`GateFailed` is raised once the report is written).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgeseg.errors import GateFailed
from edgeseg.fileio import write_text_atomic
from edgeseg.pipeline.config import PipelineRecipe, fingerprint
from edgeseg.pipeline.report import LABELS
from edgeseg.pipeline.stages import PipelineUI, StageBook

ONNX_NAMES = {"teacher": "teacher", "student": "student", "distilled": "distilled", "int8": "distilled_int8"}


@dataclass
class PipelineResult:
    """Where the pipeline wrote its report and what it found."""

    out_dir: Path
    report_md: Path
    report_json: Path
    report: dict[str, Any]
    int8_passed: bool | None


def _sha(path: str | Path) -> str:
    from edgeseg.checkpoint import file_sha256

    return file_sha256(path)


class _Pipeline:
    """One pipeline run: the stage list, the shared data, the results gathered so far."""

    def __init__(
        self, spec: PipelineRecipe, out_dir: Path, force: bool, progress: bool, ui: PipelineUI
    ) -> None:
        self.spec = spec
        self.out = out_dir
        self.force = force
        self.progress = progress
        self.ui = ui
        self.book = StageBook(out_dir, force)
        self.timings: dict[str, dict[str, Any]] = {}
        self.fingerprints: dict[str, str] = {}
        self.index = 0
        self.total = self._count_stages()
        self._data_line = ""  # logged once before the training stages

    def _count_stages(self) -> int:
        """Training and export stages per model, INT8 when enabled, evaluate, bench, report."""
        s = self.spec
        models = 3 if s.student.baseline else 2
        return 2 * models + int(s.section("quantize").enabled) + 3

    def stage(
        self, name: str, title: str, inputs: Any, work: Callable[[], tuple[dict[str, Any], list[Path]]]
    ) -> dict:
        """Run ``work`` unless the stage is complete for ``inputs``; record and return its results."""
        self.index += 1
        fp = fingerprint(inputs)
        self.fingerprints[name] = fp
        record = self.book.completed(name, fp)
        if record is not None:
            self.ui.skipped(self.index, self.total, title, record.seconds)
            self.timings[name] = {"seconds": record.seconds, "skipped": True}
            return record.results
        self.ui.banner(self.index, self.total, title)
        self.book.forget(name)
        start = time.perf_counter()
        results, outputs = work()
        seconds = time.perf_counter() - start
        self.book.save(name, fp, outputs, results, seconds)
        self.timings[name] = {"seconds": round(seconds, 3), "skipped": False}
        return results

    def checkpoint(self, key: str, which: str = "best") -> Path:
        """The ``best``/``last`` checkpoint of model ``key`` (a reused teacher's own file for both)."""
        if key == "teacher" and self.spec.teacher.checkpoint:
            return Path(self.spec.teacher.checkpoint)
        return self.out / "runs" / key / f"{which}.pt"

    def onnx(self, key: str) -> Path:
        """Where the ONNX file of model ``key`` goes."""
        return self.out / "models" / f"{ONNX_NAMES[key]}.onnx"

    # --------------------------------------------------------------------------------------------- stages
    def run(self) -> PipelineResult:
        """All stages in order; see the module docstring."""
        from edgeseg.train.builders import build_datasets
        from edgeseg.train.setup import describe_data

        spec = self.spec
        self.out.mkdir(parents=True, exist_ok=True)
        if not (self.out / "pipeline.yaml").is_file():
            self._write_recipe()
        train_set, val_set = build_datasets(spec.student_recipe())
        self._data_line = describe_data(train_set, val_set)
        self.ui.log(self._data_line)
        trainings = self._train_all(train_set)
        which = spec.section("export").checkpoint
        checkpoints = {k: self.checkpoint(k, which) for k in trainings}
        exports = self._export_all(checkpoints, val_set)
        quant = self._quantize(train_set, val_set) if spec.section("quantize").enabled else None
        files = {k: self.onnx(k) for k in exports}
        if quant is not None and quant["passed"]:
            files["int8"] = self.onnx("int8")
        models = self._evaluate(files, checkpoints, val_set)
        bench = self._bench(files, val_set)
        report = self._report(
            trainings, exports, quant, models, bench, files, checkpoints, train_set, val_set
        )
        self._write_recipe()
        int8_passed = None if quant is None else bool(quant["passed"])
        result = PipelineResult(
            self.out, self.out / "report.md", self.out / "report.json", report, int8_passed
        )
        if int8_passed is False and spec.section("quantize").required:
            raise GateFailed(
                f"{quant['message']} (quantize.required is true; the report is in {result.report_md})"
            )
        return result

    def _write_recipe(self) -> None:
        """Save the resolved recipe as ``pipeline.yaml`` (rewritten only when it changed)."""
        path, text = self.out / "pipeline.yaml", yaml.safe_dump(self.spec.to_dict(), sort_keys=False)
        if not path.is_file() or path.read_text() != text:
            write_text_atomic(path, text)

    def _stage_log(self, message: str) -> None:
        """The training stages' log, less their trainer's data line: every stage trains on the data logged
        once before them."""
        if message != self._data_line:
            self.ui.log(message)

    def _train_all(self, train_set: Any) -> dict[str, dict[str, Any]]:
        """Teacher (trained or reused), student alone (if ``baseline``), distilled student."""
        from edgeseg.pipeline.training import reuse_teacher, train_stage

        spec, runs = self.spec, self.out / "runs"
        log, progress, force = self._stage_log, self.progress, self.force

        def outputs(run_dir: Path) -> list[Path]:
            return [run_dir / name for name in ("best.pt", "last.pt", "metrics.jsonl", "recipe.yaml")]

        out: dict[str, dict[str, Any]] = {}
        checkpoint = spec.teacher.checkpoint
        if checkpoint:
            out["teacher"] = self.stage(
                "teacher",
                f"teacher: reuse {checkpoint}",
                {"reuse": _sha(checkpoint)},
                lambda: (reuse_teacher(checkpoint, list(train_set.classes)), []),
            )
        else:
            recipe = spec.teacher_recipe()
            out["teacher"] = self.stage(
                "teacher",
                f"teacher: train {recipe.model.name}",
                recipe.to_dict(),
                lambda: (
                    train_stage(recipe, runs / "teacher", force=force, progress=progress, log=log),
                    outputs(runs / "teacher"),
                ),
            )
        student = spec.student_recipe()
        if spec.student.baseline:
            out["student"] = self.stage(
                "student",
                f"student alone: train {student.model.name}",
                student.to_dict(),
                lambda: (
                    train_stage(student, runs / "student", force=force, progress=progress, log=log),
                    outputs(runs / "student"),
                ),
            )
        # the teacher distilled from is the one exported and reported
        teacher_ckpt = self.checkpoint("teacher", spec.section("export").checkpoint)
        distill = spec.distill_recipe(teacher_ckpt)
        # the teacher enters by its content, not its path, so that a moved output folder stays reusable
        anonymous = spec.distill_recipe("").to_dict()
        out["distilled"] = self.stage(
            "distilled",
            f"distilled student: {student.model.name} from the teacher",
            {"recipe": anonymous, "teacher": _sha(teacher_ckpt)},
            lambda: (
                train_stage(
                    distill, runs / "distilled", distill=True, force=force, progress=progress, log=log
                ),
                outputs(runs / "distilled"),
            ),
        )
        return out

    def _samples(self, val_set: Any) -> list:
        """The validation images of the parity checks."""
        from edgeseg.pipeline.artifacts import validation_samples

        return validation_samples(val_set, self.spec.section("export").val_images)

    def _export_all(self, checkpoints: dict[str, Path], val_set: Any) -> dict[str, dict[str, Any]]:
        """One export stage per trained model."""
        from edgeseg.pipeline.artifacts import export_model

        settings = self.spec.section("export")
        samples: list | None = None
        out = {}
        for key, ckpt in checkpoints.items():
            target = self.onnx(key)
            inputs = {
                "checkpoint": _sha(ckpt),
                "settings": dataclasses.asdict(settings),
                "data": dataclasses.asdict(self.spec.recipe.data),
            }

            def work(ckpt: Path = ckpt, target: Path = target) -> tuple[dict[str, Any], list[Path]]:
                nonlocal samples
                samples = samples if samples is not None else self._samples(val_set)
                result = export_model(ckpt, target, samples, settings, force=self.force)
                p = result["parity"]
                self.ui.log(
                    f"{target.name}: parity passed, max |Δ| {p['max_abs_diff']:.2e}, "
                    f"agreement {100 * p['agreement']:.3f} %"
                )
                return result, [target]

            out[key] = self.stage(f"export_{key}", f"export {LABELS[key]} to ONNX", inputs, work)
        return out

    def _quantize(self, train_set: Any, val_set: Any) -> dict[str, Any]:
        """INT8 of the distilled student; a failed gate is a result, not an error."""
        from edgeseg.pipeline.artifacts import quantize_model

        settings = self.spec.section("quantize")
        source, target = self.onnx("distilled"), self.onnx("int8")
        gate = {k: v for k, v in dataclasses.asdict(settings).items() if k != "required"}
        inputs = {"onnx": _sha(source), "settings": gate, "data": dataclasses.asdict(self.spec.recipe.data)}

        def work() -> tuple[dict[str, Any], list[Path]]:
            result = quantize_model(
                source,
                target,
                train_set,
                val_set,
                self._samples(val_set),
                settings,
                force=self.force,
                log=self.ui.log,
            )
            if not result["passed"]:
                self.ui.log(f"INT8 gate failed; going on without the INT8 model: {result['message']}")
            return result, [target] if result["passed"] else []

        return self.stage("quantize", "INT8 distilled student (accuracy gate)", inputs, work)

    def _evaluate(self, files: dict[str, Path], checkpoints: dict[str, Path], val_set: Any) -> dict[str, Any]:
        """Accuracy, parameters, GFLOPs and size of every model file."""
        from edgeseg.pipeline.measure import ModelFile, bench_size, evaluate_model

        size = bench_size(self.spec.section("bench"), val_set)
        entries = [
            ModelFile(
                key, LABELS[key], path, checkpoints.get(key), checkpoints.get(key, checkpoints["distilled"])
            )
            for key, path in files.items()
        ]
        inputs = {
            "files": {e.key: _sha(e.onnx) for e in entries},
            "checkpoints": {k: _sha(p) for k, p in checkpoints.items()},
            "data": dataclasses.asdict(self.spec.recipe.data),
            "size": list(size),
        }

        def work() -> tuple[dict[str, Any], list[Path]]:
            results = {}
            for e in entries:
                results[e.key] = evaluate_model(e, val_set, self.spec.recipe.data, size)
                r = results[e.key]
                torch_part = (
                    ""
                    if r["torch_metrics"] is None
                    else f" (PyTorch {100 * r['torch_metrics']['miou']:.2f} %)"
                )
                self.ui.log(
                    f"{e.label}: mIoU {100 * r['miou']:.2f} %{torch_part}, "
                    f"pixel accuracy {100 * r['pixel_acc']:.2f} %"
                )
            return results, []

        return self.stage(
            "evaluate", f"evaluate {len(entries)} model files on the validation split", inputs, work
        )

    def _bench(self, files: dict[str, Path], val_set: Any) -> dict[str, Any]:
        """Latency of every ONNX file, round-robin in one run."""
        from edgeseg.pipeline.measure import bench_files, bench_size

        settings = self.spec.section("bench")
        size = bench_size(settings, val_set)
        inputs = {
            "files": {k: _sha(p) for k, p in files.items()},
            "settings": dataclasses.asdict(settings),
            "size": list(size),
        }
        return self.stage(
            "bench",
            f"benchmark {len(files)} ONNX files round-robin at {size[0]}x{size[1]}",
            inputs,
            lambda: (bench_files(files, size, settings, log=self.ui.log), []),
        )

    def _report(
        self,
        trainings: dict[str, Any],
        exports: dict[str, Any],
        quant: dict[str, Any] | None,
        models: dict[str, Any],
        bench: dict[str, Any],
        files: dict[str, Path],
        checkpoints: dict[str, Path],
        train_set: Any,
        val_set: Any,
    ) -> dict[str, Any]:
        """Figures, report.json and report.md from every stage's results; returns report.json's content."""
        from edgeseg.pipeline.publish import write_report

        settings = self.spec.section("report")
        inputs = {"stages": dict(self.fingerprints), "settings": dataclasses.asdict(settings)}
        runs = {k: self.out / "runs" / k for k, v in trainings.items() if not v.get("reused")}

        def work() -> tuple[dict[str, Any], list[Path]]:
            figures = write_report(
                self.out,
                self.spec,
                trainings=trainings,
                runs=runs,
                exports=exports,
                quantize=quant,
                models=models,
                bench=bench,
                files=files,
                checkpoints=checkpoints,
                train_set=train_set,
                val_set=val_set,
                stages=self.timings,
            )
            return {}, [self.out / "report.md", self.out / "report.json", *figures]

        self.stage("report", "report and figures", inputs, work)
        return json.loads((self.out / "report.json").read_text())


def run_pipeline(
    spec: PipelineRecipe,
    out_dir: str | Path,
    *,
    force: bool = False,
    progress: bool = True,
    console: Any = None,
) -> PipelineResult:
    """Run (or resume) the whole pipeline of ``spec`` into ``out_dir``; see the module docstring.

    ``force`` redoes stages whose settings or inputs changed since an earlier run in ``out_dir`` (without it
    they are refused); stages whose markers still match are reused either way. ``progress`` shows the
    trainer's progress bars; ``console`` is a rich Console for the stage banners and log lines.
    """
    return _Pipeline(spec, Path(out_dir), force, progress, PipelineUI(console)).run()
