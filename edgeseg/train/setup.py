"""Setting up a run: everything the loop needs, built from a recipe in a fixed random order.

:func:`build_run` makes the datasets, the model (through a :data:`ModelFactory`), the objective and extra
modules (through a :data:`SetupHook`), then the data loader, augmentation, optimizer, scheduler and scaler,
and returns them as one :class:`Run`. The random draws happen in this order whatever the pieces are:
seed → datasets → model → hook → reseed → the rest. A hook may draw (a teacher, adapters) without moving the
augmentation stream, so a distillation run reads the same batches as the student trained alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgeseg.config import Recipe
from edgeseg.errors import InputError
from edgeseg.train import distributed as dist
from edgeseg.train.builders import build_datasets, build_model
from edgeseg.train.objective import FeatureForward, Objective, SupervisedObjective
from edgeseg.train.optim import build_optimizer, build_scheduler, param_groups
from edgeseg.train.sampling import SkipSampler
from edgeseg.train.state import seed_everything
from edgeseg.train.transfer import freeze, frozen_batchnorms

Log = Callable[[str], None]
ModelFactory = Callable[[Recipe, int, Log], nn.Module]
"""``(recipe, num_classes, log) -> model``; :func:`edgeseg.train.build_model` is the default."""
DatasetsFactory = Callable[[Recipe], tuple[Any, Any]]
"""``recipe -> (train, val)`` datasets; :func:`edgeseg.train.build_datasets` (segmentation) is the default,
``edgeseg pretrain`` gives classification ones."""
ExtraBatch = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]
"""``(step, rank) -> (images float N×3×H×W in [0, 1], masks int64 N×H×W)`` appended to that step's batch
before augmentation (unlabelled images for distillation); a function of its arguments, so that a resumed run
gets the same."""


@dataclass
class SetupContext:
    """What a :data:`SetupHook` sees: the recipe, the datasets, the freshly built model (on the CPU), the
    normalization (``mean``/``std``) of the batches the objective will get, and the device the run trains
    on."""

    recipe: Recipe
    train_ds: Any
    val_ds: Any
    model: nn.Module
    mean: list[float]
    std: list[float]
    resume: bool
    log: Log
    device: torch.device = torch.device("cpu")


@dataclass
class RunPieces:
    """What a :data:`SetupHook` adds to a run; every field is optional.

    ``objective`` replaces the recipe's label loss; ``extra_modules`` (name → module) train along and are
    saved only in ``last.pt``'s train state; ``reference`` (name, model) is evaluated once and logged;
    ``extra_batch`` (:data:`ExtraBatch`) gives images and masks to append to every step's batch;
    ``train_extra`` (a dataset with the training set's classes) joins the training set
    (:class:`edgeseg.data.datasets.JoinedDataset`).
    """

    objective: Objective | None = None
    extra_modules: dict[str, nn.Module] = field(default_factory=dict)
    reference: tuple[str, nn.Module] | None = None
    extra_batch: ExtraBatch | None = None
    train_extra: Any = None


SetupHook = Callable[[SetupContext], RunPieces]
"""Called once per process right after the model is built, before the augmentation stream is seeded."""


@dataclass
class Run:
    """The pieces of one run, built by :func:`build_run`; the loop and one epoch read them."""

    recipe: Recipe
    ctx: dist.DistContext
    train_ds: Any
    val_ds: Any
    model: nn.Module
    forward: nn.Module
    frozen_bns: list[nn.Module]
    objective: Objective
    extras: nn.ModuleDict
    reference: tuple[str, nn.Module] | None
    extra_batch: ExtraBatch | None
    skip: SkipSampler
    loader: torch.utils.data.DataLoader
    steps_per_epoch: int
    augment: nn.Module
    mix_gen: torch.Generator
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    mean: list[float]
    std: list[float]

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    @property
    def ignore_index(self) -> int:
        return self.train_ds.ignore_index

    def eval_settings(self) -> dict[str, Any]:
        """How this run's evaluators read and run the validation data (keyword arguments of
        ``train.evaluate.evaluate`` and ``pretrain.evaluate.evaluate_classifier``)."""
        r = self.recipe
        return {
            "data_cfg": r.data,
            "mean": self.mean,
            "std": self.std,
            "device": self.device,
            "amp": r.train.amp,
            "channels_last": r.train.channels_last,
            "ctx": self.ctx,
        }


def describe_data(train_ds: Any, val_ds: Any) -> str:
    """The log line that says what a run trains and validates on."""
    return f"data: {train_ds.describe()}; val: {len(val_ds)} images"


def build_run(
    recipe: Recipe,
    ctx: dist.DistContext,
    *,
    model_factory: ModelFactory | None = None,
    setup: SetupHook | None = None,
    datasets: DatasetsFactory | None = None,
    resume: bool = False,
    log: Log = print,
) -> Run:
    """Build every piece of a run of ``recipe`` on this process (see the module's note on random order)."""
    from edgeseg.data import BatchAugment, build_train_loader

    t, device = recipe.train, ctx.device
    seed_everything(t.seed + ctx.rank)
    train_ds, val_ds = (datasets or build_datasets)(recipe)
    log(describe_data(train_ds, val_ds))
    num_classes, ignore_index = train_ds.num_classes, train_ds.ignore_index
    model = (model_factory or build_model)(recipe, num_classes, log)
    if getattr(model, "num_classes", num_classes) != num_classes:
        raise InputError(
            f"model has {model.num_classes} classes but the data at {recipe.data.root} has {num_classes}"
        )
    mean, std = list(recipe.data.mean), list(recipe.data.std)
    context = SetupContext(recipe, train_ds, val_ds, model, mean, std, resume, log, device)
    pieces = setup(context) if setup else RunPieces()
    if pieces.train_extra is not None:
        from edgeseg.data.datasets import JoinedDataset

        train_ds = JoinedDataset(train_ds, pieces.train_extra)
        log(f"training set: {train_ds.describe()}")
    # Reseed, so the augmentation stream does not depend on what the model factory and the hook drew.
    seed_everything(t.seed + ctx.rank)
    freeze(model, t.freeze)
    objective = pieces.objective or SupervisedObjective.from_recipe(recipe, num_classes, ignore_index)
    if isinstance(objective, nn.Module):
        objective.to(device)
    extras = nn.ModuleDict(pieces.extra_modules).to(device)
    model.to(device)
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    model, forward = wrap_model(model, recipe, ctx)
    frozen_bns = frozen_batchnorms(model, t.freeze)  # after SyncBatchNorm replaced them

    sampler = torch.utils.data.DistributedSampler(
        train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=t.seed, drop_last=True
    )
    skip = SkipSampler(sampler)
    loader = build_train_loader(train_ds, recipe.data, seed=t.seed, sampler=skip)
    steps_per_epoch = len(sampler) // recipe.data.batch_size
    if steps_per_epoch == 0:
        raise InputError(
            f"data.batch_size {recipe.data.batch_size} is larger than the {len(sampler)} training images "
            "this process gets; lower it"
        )
    augment = BatchAugment(recipe.augment, ignore_index=ignore_index).to(device)
    mix_gen = torch.Generator().manual_seed(t.seed * 1000 + ctx.rank)
    modules = {"": model, **dict(extras.items())}
    optimizer = build_optimizer(param_groups(modules, recipe.optim.lr, t.lr_mult), recipe.optim)
    scheduler = build_scheduler(optimizer, recipe.schedule, steps_per_epoch, t.epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=t.amp and device.type == "cuda")
    return Run(
        recipe=recipe,
        ctx=ctx,
        train_ds=train_ds,
        val_ds=val_ds,
        model=model,
        forward=forward,
        frozen_bns=frozen_bns,
        objective=objective,
        extras=extras,
        reference=pieces.reference,
        extra_batch=pieces.extra_batch,
        skip=skip,
        loader=loader,
        steps_per_epoch=steps_per_epoch,
        augment=augment,
        mix_gen=mix_gen,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        mean=mean,
        std=std,
    )


def wrap_model(model: nn.Module, recipe: Recipe, ctx: dist.DistContext) -> tuple[nn.Module, nn.Module]:
    """``(model, forward)``: FeatureForward around the model; DDP (and SyncBatchNorm if asked) under torchrun.

    The returned model is the one to save (SyncBatchNorm replaces the BatchNorm layers of the given one).
    """
    if not ctx.distributed:
        return model, FeatureForward(model)
    if recipe.train.sync_bn:
        if ctx.device.type != "cuda":
            raise InputError("train.sync_bn needs CUDA devices (SyncBatchNorm does not run on CPU)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return model, nn.parallel.DistributedDataParallel(FeatureForward(model), device_ids=ids)
