"""Training: losses, optimizers and schedules, transfer learning, evaluation, the loop, torchrun support.

``fit(recipe, run_dir)`` trains a recipe into a run folder; ``evaluate(model, dataset)`` gives
``edgeseg.metrics.SegMetrics``. ``fit`` is built from ``build_run`` (``setup.py``), ``train_one_epoch``
(``epoch.py``) and an evaluator; distillation plugs in through ``fit``'s ``model_factory`` and ``setup`` hook,
which returns :class:`RunPieces` (an :class:`Objective`, extra modules, a reference model).
"""

from edgeseg.train.builders import build_datasets, build_model
from edgeseg.train.evaluate import evaluate, evaluate_onnx
from edgeseg.train.loop import FitResult, fit
from edgeseg.train.losses import LossTerm, build_loss, cross_entropy, dice_loss, label_loss
from edgeseg.train.objective import Objective, SupervisedObjective
from edgeseg.train.rundir import recipe_for_resume
from edgeseg.train.setup import RunPieces, SetupContext
from edgeseg.train.transfer import TransferReport, freeze, load_pretrained

__all__ = [
    "FitResult",
    "LossTerm",
    "Objective",
    "RunPieces",
    "SetupContext",
    "SupervisedObjective",
    "TransferReport",
    "build_datasets",
    "build_loss",
    "build_model",
    "cross_entropy",
    "dice_loss",
    "evaluate",
    "evaluate_onnx",
    "fit",
    "freeze",
    "label_loss",
    "load_pretrained",
    "recipe_for_resume",
]
