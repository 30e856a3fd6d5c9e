"""Optimizers with per-prefix learning-rate groups; warmup + poly/cosine schedules stepped per iteration."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from edgeseg.config import OptimConfig, ScheduleConfig
from edgeseg.errors import InputError


def _matching_prefix(name: str, prefixes: Iterable[str]) -> str | None:
    """The longest prefix that names ``name`` or one of its parent modules (``a.b`` matches ``a.b.c``)."""
    hits = [p for p in prefixes if name == p or name.startswith(p + ".")]
    return max(hits, key=len) if hits else None


def param_groups(modules: Mapping[str, nn.Module], lr: float, lr_mult: Mapping[str, float]) -> list[dict]:
    """Trainable parameters grouped by learning rate.

    ``modules`` maps a name prefix to a module (the model under ``""``, extra modules under their own name,
    so ``lr_mult`` keys look like ``backbone`` or ``adapters.c4``). Each parameter takes ``lr · lr_mult[p]``
    for the longest prefix ``p`` of its dotted name, else ``lr``. A prefix that matches no parameter is an
    error, so a typo does not silently train at the wrong rate. Frozen parameters (``requires_grad=False``)
    are left out.
    """
    groups: dict[str, list[nn.Parameter]] = {}
    seen: set[str] = set()
    all_names: list[str] = []
    for root, module in modules.items():
        for name, param in module.named_parameters():
            full = f"{root}.{name}" if root else name
            all_names.append(full)
            prefix = _matching_prefix(full, lr_mult)
            if prefix is not None:
                seen.add(prefix)
            if param.requires_grad:
                groups.setdefault(prefix or "", []).append(param)
    unused = [p for p in lr_mult if p not in seen]
    if unused:
        raise InputError(
            f"train.lr_mult: '{unused[0]}' matches no parameter (names start with e.g. "
            + ", ".join(sorted({n.split(".")[0] for n in all_names}))
            + ")"
        )
    return [
        {"params": params, "lr": lr * (lr_mult[prefix] if prefix else 1.0), "name": prefix or "default"}
        for prefix, params in groups.items()
    ]


def build_optimizer(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over parameter groups built by :func:`param_groups`."""
    if not groups:
        raise InputError("nothing to train: every parameter is frozen (check train.freeze)")
    if cfg.name == "adamw":
        if len(cfg.betas) != 2:
            raise InputError(f"optim.betas needs two values, got {cfg.betas}")
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    raise InputError(f"optim.name must be adamw or sgd, got '{cfg.name}'")


def lr_factor(step: int, total_steps: int, warmup_steps: int, cfg: ScheduleConfig) -> float:
    """Multiplier of the base learning rate at iteration ``step`` (0-based) of ``total_steps``.

    Linear warmup from ``warmup_ratio`` to 1 over ``warmup_steps``, then poly or cosine decay from 1 to
    ``min_lr_ratio`` over the remaining iterations.
    """
    if step < warmup_steps:
        return cfg.warmup_ratio + (1.0 - cfg.warmup_ratio) * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    if cfg.name == "poly":
        decay = (1.0 - t) ** cfg.power
    elif cfg.name == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * t))
    else:
        raise InputError(f"schedule.name must be poly or cosine, got '{cfg.name}'")
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * decay


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration ``LambdaLR`` following :func:`lr_factor`; call ``step()`` after every optimizer step.

    Its ``state_dict`` holds only numbers, so it loads with ``weights_only=True``.
    """
    total = max(1, steps_per_epoch * epochs)
    warmup = cfg.warmup_iters or round(cfg.warmup_epochs * steps_per_epoch)
    warmup = min(warmup, total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup, cfg))
