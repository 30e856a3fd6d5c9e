"""The training loop: ``fit(recipe, run_dir)``.

One loop serves plain training and distillation. What a step optimises is an :class:`Objective`, called
with the model and the augmented, mixed, normalized batch; it returns the total loss and its named parts (each
one logged). Extra trainable modules (distillation adapters) join the optimizer and the resumable state but
are not part of the saved model. A reference model (the teacher) can be evaluated once and reported beside the
student's figures.

Under torchrun the model is wrapped in DistributedDataParallel, each rank reads its share of the data, losses
and metrics are reduced across ranks, and only rank 0 prints and writes files.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edgeseg.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from edgeseg.config import Recipe
from edgeseg.errors import InputError
from edgeseg.train import distributed as dist
from edgeseg.train.builders import build_datasets, build_model
from edgeseg.train.evaluate import autocast, evaluate
from edgeseg.train.objective import FeatureForward, Objective, SupervisedObjective
from edgeseg.train.optim import build_optimizer, build_scheduler, param_groups
from edgeseg.train.progress import TrainProgress
from edgeseg.train.rundir import BEST, LAST, METRICS, MetricsLog, clean_metrics, prepare_run_dir, write_recipe
from edgeseg.train.sampling import SkipSampler
from edgeseg.train.state import capture_rng, restore_rng, seed_everything
from edgeseg.train.transfer import freeze, frozen_batchnorms, set_train_mode


@dataclass
class FitResult:
    """Where a run left its files and what it reached."""

    run_dir: Path
    best_path: Path
    last_path: Path
    best_miou: float
    """The best value of the ``score`` metric (mIoU unless ``fit`` was given another)."""
    best_epoch: int
    epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = True
    """False when ``stop_after_steps`` ended the call early (``last.pt`` then resumes it)."""


def fit(
    recipe: Recipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    model: nn.Module | None = None,
    objective: Objective | None = None,
    extra_modules: Mapping[str, nn.Module] | None = None,
    reference: tuple[str, nn.Module] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    stop_after_steps: int | None = None,
    datasets: Callable[[Recipe], tuple[Any, Any]] | None = None,
    evaluator: Callable[[Any, nn.Module], dict[str, Any]] | None = None,
    score: str = "miou",
) -> FitResult:
    """Train ``recipe`` into ``run_dir`` (``best.pt``, ``last.pt``, ``metrics.jsonl``, ``recipe.yaml``).

    ``resume`` continues from ``run_dir/last.pt`` exactly (model, optimizer, scheduler, scaler, epoch and
    position inside it, every RNG). A folder that already holds a run is refused unless ``resume`` or
    ``force``. ``model`` defaults to ``build_model(recipe, ...)`` right after ``seed_everything(train.seed +
    rank)`` (do the same to get the same initial weights); ``objective`` defaults to the recipe's label loss.
    ``extra_modules`` (name → module) are trained along and saved only in ``last.pt``'s train state.
    ``reference`` (name, model) is evaluated once on the validation split and logged. ``stop_after_steps``
    ends this call once that many optimizer steps (counted over the whole run) are done and saved, as an
    interruption would, leaving the schedule as the recipe says (for time-sliced training and tests).
    ``log`` receives the messages (default: printed above the progress bars). Works the same under
    torchrun, where only rank 0 writes and prints.

    Other tasks (``edgeseg pretrain``) reuse the loop with three more pieces: ``datasets(recipe) -> (train,
    val)`` (default: the recipe's segmentation splits), ``evaluator(trainer, model) -> metrics`` (default:
    mIoU, pixel accuracy and per-class IoU on ``trainer.val_ds``; the trainer carries ``recipe``,
    ``val_ds``, ``mean``, ``std``, ``device`` and ``ctx``) and ``score``, the metric whose best value keeps
    ``best.pt`` (logged as ``best_<score>``).
    """
    ctx = dist.setup(recipe.train.device)
    try:
        trainer = _Trainer(recipe, Path(run_dir), ctx, progress, log)
        trainer.stop_after_steps = stop_after_steps
        trainer.datasets, trainer.evaluator, trainer.score = datasets or build_datasets, evaluator, score
        return trainer.run(
            resume=resume, force=force, model=model, objective=objective,
            extra_modules=dict(extra_modules or {}), reference=reference,
        )
    finally:
        dist.cleanup(ctx)


class _Trainer:
    """State of one run; ``run`` is the whole job, ``_train_epoch`` one pass over the data."""

    def __init__(
        self, recipe: Recipe, run_dir: Path, ctx: dist.DistContext, progress: bool,
        log: Callable[[str], None] | None,
    ) -> None:
        self.recipe = recipe
        self.run_dir = run_dir
        self.ctx = ctx
        self.device = ctx.device
        self.ui = TrainProgress(bars=progress and ctx.is_main)
        self._log = log
        self.mean, self.std = list(recipe.data.mean), list(recipe.data.std)
        self.stop_after_steps: int | None = None
        self.datasets: Callable[[Recipe], tuple[Any, Any]] = build_datasets
        self.evaluator: Callable[[Any, nn.Module], dict[str, Any]] | None = None
        self.score = "miou"

    def log(self, message: str) -> None:
        if not self.ctx.is_main:
            return
        if self._log is not None:
            self._log(message)
        else:
            self.ui.log(message)

    # ----------------------------------------------------------------------------------------------- set-up
    def run(
        self, *, resume: bool, force: bool, model: nn.Module | None, objective: Objective | None,
        extra_modules: dict[str, nn.Module], reference: tuple[str, nn.Module] | None,
    ) -> FitResult:
        from edgeseg.data import BatchAugment, build_train_loader

        r, t, ctx = self.recipe, self.recipe.train, self.ctx
        if ctx.is_main:
            prepare_run_dir(self.run_dir, resume=resume, force=force)
        dist.barrier(ctx)
        seed_everything(t.seed + ctx.rank)
        self.train_ds, self.val_ds = self.datasets(r)
        self.log(f"data: {self.train_ds.describe()}; val: {len(self.val_ds)} images")
        num_classes, self.ignore_index = self.train_ds.num_classes, self.train_ds.ignore_index
        self.model = model if model is not None else build_model(r, num_classes, self.log)
        if getattr(self.model, "num_classes", num_classes) != num_classes:
            raise InputError(
                f"model has {self.model.num_classes} classes but the data at {r.data.root} has {num_classes}"
            )
        # Reseed, so the augmentation stream does not depend on whether the model was built here or given.
        seed_everything(t.seed + ctx.rank)
        freeze(self.model, t.freeze)
        self.objective = objective or SupervisedObjective.from_recipe(r, num_classes, self.ignore_index)
        if isinstance(self.objective, nn.Module):
            self.objective.to(self.device)
        self.extras = nn.ModuleDict(extra_modules).to(self.device)
        self.model.to(self.device)
        if t.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward = self._wrap(self.model)
        self.frozen_bns = frozen_batchnorms(self.model, t.freeze)  # after SyncBatchNorm replaced them

        self.sampler = torch.utils.data.DistributedSampler(
            self.train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=t.seed,
            drop_last=True,
        )
        self.skip = SkipSampler(self.sampler)
        self.loader = build_train_loader(self.train_ds, r.data, seed=t.seed, sampler=self.skip)
        self.steps_per_epoch = len(self.sampler) // r.data.batch_size
        if self.steps_per_epoch == 0:
            raise InputError(
                f"data.batch_size {r.data.batch_size} is larger than the {len(self.sampler)} training images "
                "this process gets; lower it"
            )
        self.augment = BatchAugment(r.augment, ignore_index=self.ignore_index).to(self.device)
        self.mix_gen = torch.Generator().manual_seed(t.seed * 1000 + ctx.rank)
        modules = {"": self.model, **dict(self.extras.items())}
        self.optimizer = build_optimizer(param_groups(modules, r.optim.lr, t.lr_mult), r.optim)
        self.scheduler = build_scheduler(self.optimizer, r.schedule, self.steps_per_epoch, t.epochs)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp and self.device.type == "cuda")
        self.metrics_log = MetricsLog(self.run_dir / METRICS)
        self.start_epoch, self.start_iter, self.partial = 0, 0, None
        self.best_miou, self.best_epoch, self.reference = -1.0, 0, None
        self.last_metrics: dict[str, Any] = {}
        self.step = 0
        self.resume_rng: dict[str, Any] | None = None
        if resume:
            self._resume()
        elif ctx.is_main:
            write_recipe(self.run_dir, r)
        if reference is not None and self.reference is None:
            self._evaluate_reference(*reference)
        return self._train()

    def _wrap(self, model: nn.Module) -> nn.Module:
        """FeatureForward around the model; DDP (and SyncBatchNorm if asked) under torchrun."""
        t, ctx = self.recipe.train, self.ctx
        if not ctx.distributed:
            return FeatureForward(model)
        if t.sync_bn:
            if self.device.type != "cuda":
                raise InputError("train.sync_bn needs CUDA devices (SyncBatchNorm does not run on CPU)")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.model = model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(FeatureForward(model), device_ids=ids)

    def _resume(self) -> None:
        ckpt = load_checkpoint(self.run_dir / LAST)
        state = ckpt.get("train_state")
        if state is None:
            raise InputError(f"{self.run_dir / LAST} has no train_state to resume from")
        self.model.load_state_dict(ckpt["state_dict"])
        missing = set(self.extras.keys()) ^ set(state.get("extra_modules", {}))
        if missing:
            raise InputError(
                f"{self.run_dir / LAST}: extra modules differ from this run's ({sorted(missing)})"
            )
        for name, module in self.extras.items():
            module.load_state_dict(state["extra_modules"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.start_iter = state["epoch"], state["iteration"]
        self.step = state["step"]
        self.best_miou, self.best_epoch = state["best_miou"], state["best_epoch"]
        self.reference = state.get("reference")
        partials = state.get("partial") or [None]
        self.last_metrics = dict(ckpt.get("metrics") or {})
        rng = state["rng"]
        same_world = len(rng) == self.ctx.world_size
        if not same_world and self.start_iter:
            raise InputError(
                f"{self.run_dir / LAST} was saved inside an epoch by {len(rng)} processes; resume it with "
                f"the same number (this run has {self.ctx.world_size})"
            )
        self.resume_rng = rng[self.ctx.rank] if same_world else None
        self.partial = partials[self.ctx.rank] if same_world and len(partials) == len(rng) else None
        if self.resume_rng is None:
            self.log(
                f"resuming with {self.ctx.world_size} processes instead of {len(rng)}: RNG streams reseeded"
            )
        else:
            restore_rng(self.resume_rng, {"mix": self.mix_gen})
        if self.ctx.is_main:
            self.metrics_log.keep_until(self.start_epoch)
        where = f"epoch {self.start_epoch + 1}, iteration {self.start_iter}" if self.start_iter else (
            f"the end of epoch {self.start_epoch}")
        self.log(f"resuming {self.run_dir} from {where}")

    def _evaluate_reference(self, name: str, model: nn.Module) -> None:
        model.to(self.device)
        m = self._evaluate(model)
        self.reference = {"name": name, **m}
        self.log(f"{name}: mIoU {m['miou']:.4f}, pixel accuracy {m['pixel_acc']:.4f}")
        if self.ctx.is_main:
            self.metrics_log.append({"event": "reference", **self.reference})

    # ------------------------------------------------------------------------------------------- training
    def _train(self) -> FitResult:
        t = self.recipe.train
        history = []
        stop = self.stop_after_steps
        finished = True
        for epoch in range(self.start_epoch, t.epochs):
            if stop is not None and self.step >= stop:
                finished = False
                break
            record = self._train_epoch(epoch)
            if record is None:
                finished = False
                break
            done = epoch + 1
            if done % max(1, t.eval_interval) == 0 or done == t.epochs:
                metrics = self._evaluate(self.model)
                record.update(metrics)
                self.last_metrics = metrics
                improved = metrics[self.score] > self.best_miou
                if improved:
                    self.best_miou, self.best_epoch = metrics[self.score], done
                self.log(
                    f"epoch {done}: loss {record['loss']:.4f}, {self._headline(metrics)}"
                    + (" (best)" if improved else "")
                )
                if improved and self.ctx.is_main:
                    save_checkpoint(self._checkpoint(done, with_state=False), self.run_dir / BEST)
            else:
                self.log(f"epoch {done}: loss {record['loss']:.4f}")
            record[f"best_{self.score}"] = self.best_miou
            if self.ctx.is_main:
                self.metrics_log.append(record)
            history.append(record)
            self._save_last(epoch=done, iteration=0)
        if finished and not (self.run_dir / BEST).is_file() and self.ctx.is_main:
            raise InputError(f"{self.run_dir}: nothing was trained (train.epochs is {t.epochs})")
        return FitResult(
            run_dir=self.run_dir, best_path=self.run_dir / BEST, last_path=self.run_dir / LAST,
            best_miou=self.best_miou, best_epoch=self.best_epoch, epochs=t.epochs, history=history,
            finished=finished,
        )

    def _train_epoch(self, epoch: int) -> dict[str, Any] | None:
        """Train one epoch; return its metrics record, or None when ``stop_after_steps`` cut it short."""
        t, bs = self.recipe.train, self.recipe.data.batch_size
        first = epoch == self.start_epoch and self.start_iter > 0
        skip = self.start_iter if first else 0
        self.loader.sampler.set_epoch(epoch)  # forwarded to the DistributedSampler
        self.skip.skip = skip * bs
        sums: dict[str, float] = dict(self.partial or {}) if first else {}
        sums.setdefault("images", 0.0)
        set_train_mode(self.forward, self.frozen_bns)
        batches = iter(self.loader)
        if first and self.resume_rng is not None:  # creating the iterator drew from the RNG: put it back
            restore_rng(self.resume_rng, {"mix": self.mix_gen})
        self.ui.start_epoch(epoch + 1, t.epochs, self.steps_per_epoch, completed=skip)
        start, seen = time.perf_counter(), 0
        try:
            for it, (images, masks) in enumerate(batches, start=skip):
                loss, parts = self._step(images, masks)
                n = images.shape[0]
                seen += n
                sums["images"] += n
                sums["loss"] = sums.get("loss", 0.0) + loss * n
                for k, v in parts.items():
                    sums[f"loss_{k}"] = sums.get(f"loss_{k}", 0.0) + v * n
                ips = seen * self.ctx.world_size / max(time.perf_counter() - start, 1e-9)
                self.ui.update(loss, ips)
                if it + 1 < self.steps_per_epoch:
                    interval, stop = t.checkpoint_interval, self.stop_after_steps
                    stopping = stop is not None and self.step >= stop
                    if stopping or (interval and self.step % interval == 0):
                        self._save_last(epoch=epoch, iteration=it + 1, partial=sums)
                    if stopping:
                        return None
        finally:
            self.ui.end_epoch()
        elapsed = time.perf_counter() - start
        keys = sorted(sums)
        totals = dist.all_reduce_sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64,
                                                  device=self.device), self.ctx).tolist()
        sums = dict(zip(keys, totals, strict=True))
        images = max(sums.pop("images"), 1.0)
        record: dict[str, Any] = {"event": "epoch", "epoch": epoch + 1, "step": self.step}
        record.update({k: v / images for k, v in sums.items()})
        groups = {g.get("name", str(i)): g["lr"] for i, g in enumerate(self.optimizer.param_groups)}
        record["lr"] = groups.get("default", next(iter(groups.values())))  # the base rate, after this epoch
        record["lr_groups"] = groups
        record["time_s"] = elapsed
        record["images_per_s"] = seen * self.ctx.world_size / max(elapsed, 1e-9)
        self.partial = None
        return record

    def _step(self, images: Tensor, masks: Tensor) -> tuple[float, dict[str, float]]:
        """One optimisation step on a raw batch; returns the loss and its parts as floats."""
        from edgeseg.data import normalize
        from edgeseg.data.mix import MixedBatch, mix_batch

        t, aug = self.recipe.train, self.recipe.augment
        images = images.to(self.device, non_blocking=True)
        masks = masks.to(self.device, non_blocking=True)
        images, masks = self.augment(images, masks)
        if aug.enabled:
            batch = mix_batch(
                images, masks, self.mix_gen, cutmix_prob=aug.cutmix_prob, cutmix_alpha=aug.cutmix_alpha,
                mixup_prob=aug.mixup_prob, mixup_alpha=aug.mixup_alpha,
            )
        else:
            batch = MixedBatch(images, masks, masks, 1.0)
        x = normalize(batch.images, self.mean, self.std)
        if t.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        batch = dataclasses.replace(batch, images=x)
        with autocast(self.device, t.amp):
            loss, parts = self.objective(self.forward, batch)
        if not torch.isfinite(loss):
            raise InputError(
                f"the loss became {loss.item()} at step {self.step}; lower optim.lr or set train.grad_clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self._sync_extra_grads()
        if t.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return float(loss.detach()), {k: float(v.detach()) for k, v in parts.items()}

    def _sync_extra_grads(self) -> None:
        """Average the extra modules' gradients over ranks (DDP only covers the model)."""
        if not self.ctx.distributed:
            return
        for p in self.extras.parameters():
            if p.grad is not None:
                dist.all_reduce_sum(p.grad, self.ctx).div_(self.ctx.world_size)

    def _headline(self, metrics: dict[str, Any]) -> str:
        if self.score == "miou":
            return f"mIoU {metrics['miou']:.4f}, pixel accuracy {metrics['pixel_acc']:.4f}"
        return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))

    def _evaluate(self, model: nn.Module) -> dict[str, Any]:
        if self.evaluator is not None:
            return self.evaluator(self, model)
        r = self.recipe
        m = evaluate(
            model, self.val_ds, data_cfg=r.data, mean=self.mean, std=self.std, device=self.device,
            amp=r.train.amp, channels_last=r.train.channels_last, ctx=self.ctx,
        )
        return clean_metrics(m.to_dict(self.val_ds.classes))

    # ------------------------------------------------------------------------------------------ checkpoints
    def _checkpoint(self, epoch: int, with_state: bool, train_state: dict | None = None) -> dict[str, Any]:
        return make_checkpoint(
            self.model, classes=self.train_ds.classes, palette=self.train_ds.palette, mean=self.mean,
            std=self.std, ignore_index=self.ignore_index, recipe=self.recipe.to_dict(), epoch=epoch,
            metrics=self.last_metrics, train_state=train_state if with_state else None,
        )

    def _save_last(self, epoch: int, iteration: int, partial: dict[str, float] | None = None) -> None:
        """Write ``last.pt`` with everything needed to continue from (epoch, iteration)."""
        rng = dist.all_gather_objects(capture_rng({"mix": self.mix_gen}), self.ctx)
        partials = dist.all_gather_objects(dict(partial) if partial else None, self.ctx)
        if not self.ctx.is_main:
            return
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "iteration": iteration,
            "step": self.step,
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "reference": self.reference,
            "partial": partials,
            "extra_modules": {k: m.state_dict() for k, m in self.extras.items()},
            "rng": rng,
            "world_size": self.ctx.world_size,
        }
        save_checkpoint(self._checkpoint(epoch, with_state=True, train_state=state), self.run_dir / LAST)
