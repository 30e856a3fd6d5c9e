"""Building what a recipe describes: datasets and the model (with pretrained weights and frozen parts)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from edgeseg.config import Recipe
from edgeseg.errors import InputError
from edgeseg.train.transfer import freeze, load_pretrained


def build_datasets(recipe: Recipe) -> tuple:
    """(train, val) datasets of ``recipe.data``; they must agree on classes and every mask's labels must be
    valid (a scan of the masks, before training starts)."""
    from edgeseg.data import build_dataset

    cfg = recipe.data
    train = build_dataset(cfg.root, cfg.train_split, cfg)
    val = build_dataset(cfg.root, cfg.val_split, cfg)
    if list(train.classes) != list(val.classes):
        raise InputError(
            f"{cfg.root}: splits {cfg.train_split!r} and {cfg.val_split!r} have different classes"
        )
    train.check_labels()
    val.check_labels()
    return train, val


def build_model(recipe: Recipe, num_classes: int, log: Callable[[str], None] = print) -> nn.Module:
    """The recipe's model for ``num_classes`` classes, pretrained weights loaded, ``train.freeze`` applied.

    The load report (loaded / missing / re-initialised / unexpected keys) goes to ``log``.
    """
    from edgeseg.models import create

    if "num_classes" in recipe.model.kwargs:
        raise InputError("model.kwargs.num_classes is taken from the dataset; set data.num_classes instead")
    model = create(recipe.model.name, num_classes=num_classes, **recipe.model.kwargs)
    if recipe.model.pretrained:
        report = load_pretrained(model, recipe.model.pretrained)
        log(report.summary())
    if recipe.train.freeze:
        count = freeze(model, recipe.train.freeze)
        log(f"frozen: {', '.join(recipe.train.freeze)} ({count:,} parameters)")
    return model
