"""One pass over the training data, and one optimisation step, on the pieces of a :class:`Run`.

Where the run stands (epoch, iteration, step, the sums of an interrupted epoch, the RNG state to restore) is a
:class:`Position`, which the loop saves in ``last.pt`` and restores on resume.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from edgeseg.errors import InputError
from edgeseg.train import distributed as dist
from edgeseg.train.evaluate import autocast
from edgeseg.train.progress import TrainProgress
from edgeseg.train.setup import Run
from edgeseg.train.state import restore_rng
from edgeseg.train.transfer import set_train_mode


@dataclass
class Position:
    """Where a run stands: ``start_epoch``/``start_iter`` to begin from, optimizer ``step``s taken so far,
    the loss sums of an epoch interrupted at ``start_iter`` (``partial``) and the RNG state saved with it."""

    start_epoch: int = 0
    start_iter: int = 0
    step: int = 0
    partial: dict[str, float] | None = None
    resume_rng: dict[str, Any] | None = None


SaveLast = Callable[[int, int, dict[str, float]], None]
"""``save_last(epoch, iteration, partial_sums)``: write ``last.pt`` inside an epoch."""


def train_one_epoch(
    run: Run,
    pos: Position,
    epoch: int,
    ui: TrainProgress,
    save_last: SaveLast,
    stop_after_steps: int | None = None,
) -> dict[str, Any] | None:
    """Train one epoch; return its metrics record, or None when ``stop_after_steps`` cut it short.

    The first epoch of a resumed run skips the iterations already done and continues their loss sums.
    ``last.pt`` is written every ``train.checkpoint_interval`` steps and when the run stops early.
    """
    t, bs = run.recipe.train, run.recipe.data.batch_size
    first = epoch == pos.start_epoch and pos.start_iter > 0
    skip = pos.start_iter if first else 0
    run.loader.sampler.set_epoch(epoch)  # forwarded to the DistributedSampler
    run.skip.skip = skip * bs
    sums: dict[str, float] = dict(pos.partial or {}) if first else {}
    sums.setdefault("images", 0.0)
    set_train_mode(run.forward, run.frozen_bns)
    batches = iter(run.loader)
    if first and pos.resume_rng is not None:  # creating the iterator drew from the RNG: put it back
        restore_rng(pos.resume_rng, {"mix": run.mix_gen})
    ui.start_epoch(epoch + 1, t.epochs, run.steps_per_epoch, completed=skip)
    start, seen = time.perf_counter(), 0
    try:
        for it, (images, masks) in enumerate(batches, start=skip):
            loss, parts = train_step(run, images, masks, pos.step)
            pos.step += 1
            n = images.shape[0]
            seen += n
            sums["images"] += n
            sums["loss"] = sums.get("loss", 0.0) + loss * n
            for k, v in parts.items():
                sums[f"loss_{k}"] = sums.get(f"loss_{k}", 0.0) + v * n
            ui.update(loss, seen * run.ctx.world_size / max(time.perf_counter() - start, 1e-9))
            if it + 1 < run.steps_per_epoch:
                interval = t.checkpoint_interval
                stopping = stop_after_steps is not None and pos.step >= stop_after_steps
                if stopping or (interval and pos.step % interval == 0):
                    save_last(epoch, it + 1, sums)
                if stopping:
                    return None
    finally:
        ui.end_epoch()
    elapsed = time.perf_counter() - start
    keys = sorted(sums)
    totals = dist.all_reduce_sum(
        torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=run.device), run.ctx
    ).tolist()
    sums = dict(zip(keys, totals, strict=True))
    images = max(sums.pop("images"), 1.0)
    record: dict[str, Any] = {"event": "epoch", "epoch": epoch + 1, "step": pos.step}
    record.update({k: v / images for k, v in sums.items()})
    groups = {g.get("name", str(i)): g["lr"] for i, g in enumerate(run.optimizer.param_groups)}
    record["lr"] = groups.get("default", next(iter(groups.values())))  # the base rate, after this epoch
    record["lr_groups"] = groups
    record["time_s"] = elapsed
    record["images_per_s"] = seen * run.ctx.world_size / max(elapsed, 1e-9)
    pos.partial = None
    return record


def train_step(run: Run, images: Tensor, masks: Tensor, step: int) -> tuple[float, dict[str, float]]:
    """One optimisation step on a raw batch (the run's extra images appended, augment, mix, normalize,
    objective, backward, optimizer and scheduler step); returns the loss and its parts as floats. ``step``
    (optimizer steps so far) seeds the extra images and names the step in errors."""
    from edgeseg.data import normalize
    from edgeseg.data.mix import MixedBatch, mix_batch

    t, aug, device = run.recipe.train, run.recipe.augment, run.device
    if run.extra_batch is not None:
        more_images, more_masks = run.extra_batch(step, run.ctx.rank)
        images, masks = torch.cat([images, more_images]), torch.cat([masks, more_masks])
    images = images.to(device, non_blocking=True)
    masks = masks.to(device, non_blocking=True)
    images, masks = run.augment(images, masks)
    if aug.enabled:
        batch = mix_batch(
            images,
            masks,
            run.mix_gen,
            cutmix_prob=aug.cutmix_prob,
            cutmix_alpha=aug.cutmix_alpha,
            mixup_prob=aug.mixup_prob,
            mixup_alpha=aug.mixup_alpha,
        )
    else:
        batch = MixedBatch(images, masks, masks, 1.0)
    x = normalize(batch.images, run.mean, run.std)
    if t.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    batch = dataclasses.replace(batch, images=x, progress=step / (run.steps_per_epoch * t.epochs))
    with autocast(device, t.amp):
        loss, parts = run.objective(run.forward, batch)
    if not torch.isfinite(loss):
        raise InputError(
            f"the loss became {loss.item()} at step {step}; lower optim.lr or set train.grad_clip"
        )
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    _sync_extra_grads(run)
    if t.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        params = [p for g in run.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    return float(loss.detach()), {k: float(v.detach()) for k, v in parts.items()}


def _sync_extra_grads(run: Run) -> None:
    """Average the extra modules' gradients over ranks (DDP only covers the model)."""
    if not run.ctx.distributed:
        return
    for p in run.extras.parameters():
        if p.grad is not None:
            dist.all_reduce_sum(p.grad, run.ctx).div_(run.ctx.world_size)
