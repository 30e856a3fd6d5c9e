"""The edgeseg model zoo: segmentation models built by name, their backbones and building blocks.

``create(name, num_classes=..., **kw)`` builds a registered model, ``list_models()`` names them,
``complexity(model, (H, W))`` gives parameters and GFLOPs (multiply-accumulates × 1e-9),
``create_classifier(backbone, num_classes)`` an image classifier on a zoo backbone (for pretraining it).
"""

from edgeseg.models.backbones import LoadReport, create_backbone, load_pretrained_backbone
from edgeseg.models.base import SegmentationModel
from edgeseg.models.classifier import CLASSIFIER, ImageClassifier, create_classifier, is_classifier
from edgeseg.models.complexity import complexity
from edgeseg.models.registry import create, describe_model, list_models, register_model

__all__ = [
    "CLASSIFIER",
    "ImageClassifier",
    "LoadReport",
    "SegmentationModel",
    "complexity",
    "create",
    "create_backbone",
    "describe_model",
    "create_classifier",
    "is_classifier",
    "list_models",
    "load_pretrained_backbone",
    "register_model",
]
