"""The training loop: ``fit(recipe, run_dir)``.

One loop serves plain training and distillation. :func:`~edgeseg.train.setup.build_run` builds the pieces
(datasets, model, objective, optimizer, ...), :func:`~edgeseg.train.epoch.train_one_epoch` trains one pass,
an evaluator scores the model after each evaluated epoch, and this module strings them together with the
run folder: ``best.pt``, ``last.pt`` (exact resume), ``metrics.jsonl``. What a step optimises is an
:class:`~edgeseg.train.objective.Objective`; a caller changes it, the model, extra trainable modules and a
reference model through ``fit``'s ``model_factory`` and ``setup`` hook (distillation does), without
repeating any of the loop's set-up.

Under torchrun the model is wrapped in DistributedDataParallel, each rank reads its share of the data, losses
and metrics are reduced across ranks, and only rank 0 prints and writes files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edgeseg.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from edgeseg.config import Recipe
from edgeseg.errors import InputError
from edgeseg.train import distributed as dist
from edgeseg.train.epoch import Position, train_one_epoch
from edgeseg.train.evaluate import evaluate
from edgeseg.train.progress import TrainProgress
from edgeseg.train.rundir import BEST, LAST, METRICS, MetricsLog, clean_metrics, prepare_run_dir, write_recipe
from edgeseg.train.setup import DatasetsFactory, ModelFactory, Run, SetupHook, build_run
from edgeseg.train.state import capture_rng, restore_rng

Evaluator = Callable[[Run, nn.Module], dict[str, Any]]
"""``(run, model) -> metrics``: scores a model on the run's validation data. The loop keeps the checkpoint
with the highest ``metrics[score]`` (``fit``'s ``score``, ``"miou"`` by default) and logs every key."""


def segmentation_metrics(run: Run, model: nn.Module) -> dict[str, Any]:
    """mIoU, pixel accuracy and per-class IoU of ``model`` on ``run.val_ds`` (the default evaluator)."""
    m = evaluate(model, run.val_ds, **run.eval_settings())
    return clean_metrics(m.to_dict(run.val_ds.classes))


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
    model_factory: ModelFactory | None = None,
    setup: SetupHook | None = None,
    evaluator: Evaluator = segmentation_metrics,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    stop_after_steps: int | None = None,
    datasets: DatasetsFactory | None = None,
    score: str = "miou",
) -> FitResult:
    """Train ``recipe`` into ``run_dir`` (``best.pt``, ``last.pt``, ``metrics.jsonl``, ``recipe.yaml``).

    ``resume`` continues from ``run_dir/last.pt`` exactly (model, optimizer, scheduler, scaler, epoch and
    position inside it, every RNG). A folder that already holds a run is refused unless ``resume`` or
    ``force``; the folder is touched only once every piece is built, so a bad input leaves it as it was.
    Resuming a run whose ``last.pt`` already ends the recipe's schedule returns at once: nothing is built
    (a distillation's teacher is not opened, its unlabelled scenes are not relabelled).
    ``model_factory(recipe, num_classes, log)`` builds the model (default: ``build_model``); ``setup`` is
    called with a :class:`~edgeseg.train.setup.SetupContext` (recipe, datasets, model) and returns the
    :class:`~edgeseg.train.setup.RunPieces` it adds: an objective (default: the recipe's label loss), extra
    modules trained along and saved only in ``last.pt``'s train state, a reference (name, model) evaluated
    once and logged. Whatever these draw at random, the run's augmentation stream stays the same.
    ``evaluator`` scores the model after evaluated epochs. ``stop_after_steps`` ends this call once that
    many optimizer steps (counted over the whole run) are done and saved, as an interruption would, leaving
    the schedule as the recipe says (for time-sliced training and tests). ``log`` receives the messages
    (default: printed above the progress bars). Works the same under torchrun, where only rank 0 writes
    and prints.

    Other tasks reuse the loop (``edgeseg pretrain`` trains classifiers) with ``datasets(recipe) -> (train,
    val)`` (default: the recipe's segmentation splits), their ``evaluator`` and ``score``, the evaluator's
    metric whose best value keeps ``best.pt`` (logged as ``best_<score>``).
    """
    ctx = dist.setup(recipe.train.device)
    try:
        ui = TrainProgress(bars=progress and ctx.is_main)
        say = _rank0_log(ctx, log or ui.log)
        done = _finished_run(Path(run_dir), recipe.train.epochs) if resume else None
        if done is not None:
            say(f"{run_dir} already ended its {done.epochs} epochs: nothing to resume")
            return done
        run = build_run(
            recipe, ctx, model_factory=model_factory, setup=setup, datasets=datasets, resume=resume, log=say
        )
        if ctx.is_main:
            prepare_run_dir(run_dir, resume=resume, force=force)
        dist.barrier(ctx)
        loop = _Loop(run, Path(run_dir), ui, say, evaluator, score)
        if resume:
            loop.resume()
        elif ctx.is_main:
            write_recipe(loop.run_dir, recipe)
        if run.reference is not None and loop.reference is None:
            loop.evaluate_reference(*run.reference)
        return loop.train(stop_after_steps)
    finally:
        dist.cleanup(ctx)


def _finished_run(run_dir: Path, epochs: int) -> FitResult | None:
    """The result of ``run_dir`` when its ``last.pt`` ends an ``epochs``-epoch schedule, else None."""
    path = run_dir / LAST
    if not path.is_file():
        return None  # prepare_run_dir names the missing file
    state = load_checkpoint(path).get("train_state")
    if state is None or state["iteration"] or state["epoch"] < epochs:
        return None
    return FitResult(
        run_dir=run_dir,
        best_path=run_dir / BEST,
        last_path=path,
        best_miou=state["best_miou"],
        best_epoch=state["best_epoch"],
        epochs=epochs,
    )


def _rank0_log(ctx: dist.DistContext, log: Callable[[str], None]) -> Callable[[str], None]:
    def say(message: str) -> None:
        if ctx.is_main:
            log(message)

    return say


class _Loop:
    """The epochs of a run, its best score so far, and its files (``best.pt``, ``last.pt``, metrics)."""

    def __init__(
        self,
        run: Run,
        run_dir: Path,
        ui: TrainProgress,
        log: Callable[[str], None],
        evaluator: Evaluator,
        score: str = "miou",
    ) -> None:
        self.run, self.run_dir, self.ui, self.log, self.evaluator = run, run_dir, ui, log, evaluator
        self.score = score
        self.pos = Position()
        self.metrics_log = MetricsLog(run_dir / METRICS)
        self.best_miou, self.best_epoch = -1.0, 0
        self.reference: dict[str, Any] | None = None
        self.last_metrics: dict[str, Any] = {}

    def train(self, stop_after_steps: int | None) -> FitResult:
        run, t, pos = self.run, self.run.recipe.train, self.pos
        history = []
        finished = True
        for epoch in range(pos.start_epoch, t.epochs):
            if stop_after_steps is not None and pos.step >= stop_after_steps:
                finished = False
                break
            record = train_one_epoch(
                run,
                pos,
                epoch,
                self.ui,
                lambda ep, it, sums: self.save_last(ep, it, partial=sums),
                stop_after_steps,
            )
            if record is None:
                finished = False
                break
            done = epoch + 1
            if done % max(1, t.eval_interval) == 0 or done == t.epochs:
                self._evaluate_epoch(done, record)
            else:
                self.log(f"epoch {done}: loss {record['loss']:.4f}")
            record[f"best_{self.score}"] = self.best_miou
            if run.ctx.is_main:
                self.metrics_log.append(record)
            history.append(record)
            self.save_last(epoch=done, iteration=0)
        if finished and not (self.run_dir / BEST).is_file() and run.ctx.is_main:
            raise InputError(f"{self.run_dir}: nothing was trained (train.epochs is {t.epochs})")
        return FitResult(
            run_dir=self.run_dir,
            best_path=self.run_dir / BEST,
            last_path=self.run_dir / LAST,
            best_miou=self.best_miou,
            best_epoch=self.best_epoch,
            epochs=t.epochs,
            history=history,
            finished=finished,
        )

    def _evaluate_epoch(self, done: int, record: dict[str, Any]) -> None:
        metrics = self.evaluator(self.run, self.run.model)
        record.update(metrics)
        self.last_metrics = metrics
        improved = metrics[self.score] > self.best_miou
        if improved:
            self.best_miou, self.best_epoch = metrics[self.score], done
        best = " (best)" if improved else ""
        self.log(f"epoch {done}: loss {record['loss']:.4f}, {self._headline(metrics)}{best}")
        if improved and self.run.ctx.is_main:
            save_checkpoint(self._checkpoint(done), self.run_dir / BEST)

    def _headline(self, metrics: dict[str, Any]) -> str:
        if self.score == "miou":
            return f"mIoU {metrics['miou']:.4f}, pixel accuracy {metrics['pixel_acc']:.4f}"
        return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))

    def evaluate_reference(self, name: str, model: nn.Module) -> None:
        model.to(self.run.device)
        m = self.evaluator(self.run, model)
        self.reference = {"name": name, **m}
        self.log(f"{name}: mIoU {m['miou']:.4f}, pixel accuracy {m['pixel_acc']:.4f}")
        if self.run.ctx.is_main:
            self.metrics_log.append({"event": "reference", **self.reference})

    # ------------------------------------------------------------------------------------------ checkpoints
    def _checkpoint(self, epoch: int, train_state: dict | None = None) -> dict[str, Any]:
        run = self.run
        return make_checkpoint(
            run.model,
            classes=run.train_ds.classes,
            palette=run.train_ds.palette,
            mean=run.mean,
            std=run.std,
            ignore_index=run.ignore_index,
            recipe=run.recipe.to_dict(),
            epoch=epoch,
            metrics=self.last_metrics,
            train_state=train_state,
        )

    def save_last(self, epoch: int, iteration: int, partial: dict[str, float] | None = None) -> None:
        """Write ``last.pt`` with everything needed to continue from (epoch, iteration)."""
        run, ctx = self.run, self.run.ctx
        rng = dist.all_gather_objects(capture_rng({"mix": run.mix_gen}), ctx)
        partials = dist.all_gather_objects(dict(partial) if partial else None, ctx)
        if not ctx.is_main:
            return
        state = {
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "epoch": epoch,
            "iteration": iteration,
            "step": self.pos.step,
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "reference": self.reference,
            "partial": partials,
            "extra_modules": {k: m.state_dict() for k, m in run.extras.items()},
            "rng": rng,
            "world_size": ctx.world_size,
        }
        save_checkpoint(self._checkpoint(epoch, train_state=state), self.run_dir / LAST)

    def resume(self) -> None:
        """Load ``last.pt`` into the run's pieces and this loop's position."""
        run, ctx, pos, path = self.run, self.run.ctx, self.pos, self.run_dir / LAST
        ckpt = load_checkpoint(path)
        state = ckpt.get("train_state")
        if state is None:
            raise InputError(f"{path} has no train_state to resume from")
        run.model.load_state_dict(ckpt["state_dict"])
        missing = set(run.extras.keys()) ^ set(state.get("extra_modules", {}))
        if missing:
            raise InputError(f"{path}: extra modules differ from this run's ({sorted(missing)})")
        for name, module in run.extras.items():
            module.load_state_dict(state["extra_modules"][name])
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        run.scaler.load_state_dict(state["scaler"])
        pos.start_epoch, pos.start_iter, pos.step = state["epoch"], state["iteration"], state["step"]
        self.best_miou, self.best_epoch = state["best_miou"], state["best_epoch"]
        self.reference = state.get("reference")
        partials = state.get("partial") or [None]
        self.last_metrics = dict(ckpt.get("metrics") or {})
        rng = state["rng"]
        same_world = len(rng) == ctx.world_size
        if not same_world and pos.start_iter:
            raise InputError(
                f"{path} was saved inside an epoch by {len(rng)} processes; resume it with "
                f"the same number (this run has {ctx.world_size})"
            )
        pos.resume_rng = rng[ctx.rank] if same_world else None
        pos.partial = partials[ctx.rank] if same_world and len(partials) == len(rng) else None
        if pos.resume_rng is None:
            self.log(f"resuming with {ctx.world_size} processes instead of {len(rng)}: RNG streams reseeded")
        else:
            restore_rng(pos.resume_rng, {"mix": run.mix_gen})
        if ctx.is_main:
            self.metrics_log.keep_until(pos.start_epoch)
        where = (
            f"epoch {pos.start_epoch + 1}, iteration {pos.start_iter}"
            if pos.start_iter
            else (f"the end of epoch {pos.start_epoch}")
        )
        self.log(f"resuming {self.run_dir} from {where}")
