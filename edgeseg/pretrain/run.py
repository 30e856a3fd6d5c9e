"""``pretrain(recipe, run_dir)``: train a zoo backbone as an image classifier with the training loop.

The recipe is an ordinary training recipe whose ``model.name`` is a backbone (``dsnet``, ``qdsnet``,
``mobilenetv2``, ``resnet18``...; ``model.kwargs`` may set ``width_mult`` and ``dropout``) and whose
``data.root`` is an ImageFolder tree or ``synthetic`` (object crops), plus an optional ``pretrain:`` section.
Everything else — augmentation, CutMix/MixUp, AMP, torchrun DDP, exact resume, atomic checkpoints,
``metrics.jsonl`` — is :func:`edgeseg.train.fit`'s: this module only supplies the classification pieces
(datasets, model, objective, top-1/top-5 evaluation). ``best.pt`` is the checkpoint of the best top-1; it
loads into every segmentation model on that backbone as ``model.pretrained``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn

from edgeseg.config import Recipe, load_recipe
from edgeseg.errors import InputError
from edgeseg.pretrain.config import SECTIONS, PretrainConfig
from edgeseg.train.loop import FitResult
from edgeseg.train.setup import RunPieces, SetupContext

SCORE = "top1"
"""The metric whose best value keeps ``best.pt``."""


def load_pretrain_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Read a pretraining recipe with ``--set`` overrides."""
    return load_recipe(path, overrides, sections=SECTIONS)


def resume_pretrain_recipe(run_dir: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """The recipe stored in ``run_dir/last.pt`` of a pretraining run, with ``--set`` overrides applied."""
    from edgeseg.train.rundir import recipe_for_resume

    return recipe_for_resume(run_dir, overrides, sections=SECTIONS)


def classification_datasets(recipe: Recipe) -> tuple[Any, Any]:
    """(train, val) classification datasets of ``recipe.data``; they must agree on classes."""
    from edgeseg.data.classification import build_classification_dataset

    cfg = recipe.data
    train = build_classification_dataset(cfg.root, cfg.train_split, cfg)
    val = build_classification_dataset(cfg.root, cfg.val_split, cfg)
    if list(train.classes) != list(val.classes):
        raise InputError(
            f"{cfg.root}: splits {cfg.train_split!r} and {cfg.val_split!r} have different classes"
        )
    return train, val


def build_classifier(recipe: Recipe, num_classes: int, log: Callable[[str], None] = print) -> nn.Module:
    """The recipe's classifier (``model.name`` a backbone), ``model.pretrained`` loaded, ``train.freeze``
    applied."""
    from edgeseg.models import create_classifier
    from edgeseg.train.transfer import freeze, load_pretrained

    if "num_classes" in recipe.model.kwargs:
        raise InputError("model.kwargs.num_classes is taken from the dataset; set data.num_classes instead")
    unknown = sorted(set(recipe.model.kwargs) - {"width_mult", "dropout"})
    if unknown:
        raise InputError(f"model.kwargs: a classifier takes width_mult and dropout, not {', '.join(unknown)}")
    model = create_classifier(recipe.model.name, num_classes, **recipe.model.kwargs)
    if recipe.model.pretrained:
        log(load_pretrained(model, recipe.model.pretrained).summary())
    if recipe.train.freeze:
        log(f"frozen: {', '.join(recipe.train.freeze)} ({freeze(model, recipe.train.freeze):,} parameters)")
    return model


def classification_metrics(run: Any, model: nn.Module) -> dict[str, Any]:
    """Top-1/top-5 of ``model`` on ``run.val_ds`` (the loop's evaluator for pretraining)."""
    from edgeseg.pretrain.evaluate import evaluate_classifier

    return evaluate_classifier(model, run.val_ds, **run.eval_settings()).to_dict()


def pretrain(
    recipe: Recipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    stop_after_steps: int | None = None,
) -> FitResult:
    """Pretrain ``recipe``'s backbone as a classifier into ``run_dir`` (``best.pt`` = best top-1).

    Returns the loop's ``FitResult`` (its ``best_miou`` is the best top-1 here).
    """
    from edgeseg.train.loop import fit

    cfg: PretrainConfig = recipe.section("pretrain")
    return fit(
        recipe,
        run_dir,
        resume=resume,
        force=force,
        model_factory=build_classifier,
        setup=partial(_classification_pieces, cfg),
        datasets=classification_datasets,
        evaluator=classification_metrics,
        score=SCORE,
        progress=progress,
        log=log,
        stop_after_steps=stop_after_steps,
    )


def _classification_pieces(cfg: PretrainConfig, context: SetupContext) -> RunPieces:
    """The loop's set-up hook: the soft-label cross-entropy objective."""
    from edgeseg.pretrain.objective import ClassificationObjective

    data = context.train_ds
    objective = ClassificationObjective(data.num_classes, data.ignore_index, cfg.label_smoothing)
    return RunPieces(objective=objective)
