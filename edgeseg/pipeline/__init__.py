"""The end-to-end job: teacher → student alone → distilled student → ONNX → INT8 → benchmark → report.

``load_pipeline_recipe(path, overrides)`` reads a pipeline recipe (``config``);
``run_pipeline(recipe, out_dir)`` runs or resumes it (``run``), stage by stage with done-markers
(``stages``), composing ``edgeseg.train``, ``edgeseg.distill``, ``edgeseg.export``, ``edgeseg.bench`` and
``edgeseg.runtime``; ``report``, ``figures`` and ``publish`` write ``report.md``, ``report.json`` and the
PNG figures.
"""

from edgeseg.pipeline.config import (
    BenchSettings,
    ExportSettings,
    PipelineRecipe,
    QuantizeSettings,
    ReportSettings,
    StudentConfig,
    TeacherConfig,
    load_pipeline_recipe,
)
from edgeseg.pipeline.run import PipelineResult, run_pipeline

__all__ = [
    "BenchSettings",
    "ExportSettings",
    "PipelineRecipe",
    "PipelineResult",
    "QuantizeSettings",
    "ReportSettings",
    "StudentConfig",
    "TeacherConfig",
    "load_pipeline_recipe",
    "run_pipeline",
]
