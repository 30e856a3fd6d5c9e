"""What a training step minimises: the :class:`Objective` protocol and the plain supervised objective.

Distillation supplies its own objective (teacher, KD losses, adapters) to the same loop.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor, nn

from edgeseg.config import Recipe
from edgeseg.errors import InputError
from edgeseg.train.losses import LossTerm, build_loss, label_loss


class Objective(Protocol):
    """What one training step minimises.

    Called as ``objective(model, batch)``: ``batch`` is the mixed batch (``images`` augmented and
    normalized, ``target_a``, ``target_b``, ``lam``); ``model(images)`` returns logits and
    ``model(images, features=True)`` returns ``(logits, {name: feature map})``. Call the model that way
    rather than its methods, so that DistributedDataParallel sees the forward pass. Returns
    ``(total loss, {part name: loss})``; the parts are logged as ``loss_<name>``. An objective that is an
    ``nn.Module`` is moved to the training device (a frozen teacher inside it goes along); its own parameters
    are not trained — pass trainable ones as extra modules.
    """

    def __call__(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]: ...


class SupervisedObjective:
    """The label loss of ``train.loss`` (CE, Dice or both), over MixUp targets as λ·L(a) + (1−λ)·L(b)."""

    def __init__(self, terms: list[LossTerm]) -> None:
        self.terms = terms

    @classmethod
    def from_recipe(cls, recipe: Recipe, num_classes: int, ignore_index: int) -> SupervisedObjective:
        """The objective a recipe's ``train`` section describes."""
        t = recipe.train
        try:
            terms = build_loss(
                t.loss,
                ignore_index=ignore_index,
                class_weights=t.class_weights,
                dice_weight=t.dice_weight,
                num_classes=num_classes,
            )
        except ValueError as err:
            raise InputError(str(err)) from err
        return cls(terms)

    def __call__(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        return label_loss(self.terms, model(batch.images), batch)


class FeatureForward(nn.Module):
    """Routes ``model(x, features=True)`` to ``forward_features`` so DDP wraps both kinds of forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, features: bool = False) -> Any:
        return self.model.forward_features(x) if features else self.model(x)
