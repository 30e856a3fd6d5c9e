"""Pretraining zoo backbones as image classifiers (``edgeseg pretrain``), reusing the training loop.

``pretrain(recipe, run_dir)`` trains; ``evaluate_classifier`` / ``evaluate_classifier_file`` give top-1 and
top-5. The checkpoint it writes is a classifier (``model.name: classifier``) whose backbone loads into every
segmentation model on that backbone as ``model.pretrained``.
"""

from edgeseg.pretrain.config import PretrainConfig
from edgeseg.pretrain.evaluate import evaluate_classifier, evaluate_classifier_file
from edgeseg.pretrain.run import load_pretrain_recipe, pretrain, resume_pretrain_recipe

__all__ = [
    "PretrainConfig",
    "evaluate_classifier",
    "evaluate_classifier_file",
    "load_pretrain_recipe",
    "pretrain",
    "resume_pretrain_recipe",
]
