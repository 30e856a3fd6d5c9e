"""Transfer learning: loading pretrained weights into a model, freezing parts of it.

``train.freeze`` names parameter prefixes (``backbone``, ``backbone.layer1``); frozen parameters stop
requiring gradients and the BatchNorm layers under those prefixes stay in eval mode (their running statistics
are not updated) even while the rest of the model trains.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeseg.checkpoint import load_weights_file
from edgeseg.errors import InputError


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def freeze(model: nn.Module, prefixes: Iterable[str]) -> int:
    """Set ``requires_grad=False`` on parameters under the given prefixes; return how many were frozen.

    A prefix naming no module or parameter is an :class:`InputError` with the closest valid name.
    """
    prefixes = list(prefixes)
    names = [n for n, _ in model.named_modules() if n] + [n for n, _ in model.named_parameters()]
    for p in prefixes:
        if p not in names:
            guess = difflib.get_close_matches(p, names, n=1, cutoff=0.5)
            hint = f"; did you mean '{guess[0]}'?" if guess else ""
            raise InputError(f"train.freeze: '{p}' names no module or parameter of the model{hint}")
    count = 0
    for name, param in model.named_parameters():
        if _under(name, prefixes):
            param.requires_grad_(False)
            count += param.numel()
    return count


def frozen_batchnorms(model: nn.Module, prefixes: Iterable[str]) -> list[nn.Module]:
    """The BatchNorm modules under the frozen prefixes (they must stay in eval mode during training)."""
    prefixes = list(prefixes)
    return [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and _under(name, prefixes)
    ]


def set_train_mode(model: nn.Module, frozen_bns: Iterable[nn.Module]) -> None:
    """``model.train()`` but with the frozen BatchNorms back in eval mode."""
    model.train()
    for bn in frozen_bns:
        bn.eval()


@dataclass
class TransferReport:
    """What :func:`load_pretrained` did: keys loaded, kept at initialisation, or not used."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self, examples: int = 4) -> str:
        """Counts of loaded, missing, re-initialised (shape differs) and unexpected keys, with a few names."""

        def part(label: str, keys: list[str]) -> str:
            shown = ", ".join(keys[:examples]) + (", ..." if len(keys) > examples else "")
            return f"{len(keys)} {label}" + (f" ({shown})" if keys else "")

        return f"pretrained {self.source}: " + "; ".join(
            [
                f"{len(self.loaded)} tensors loaded",
                part("missing", self.missing),
                part("re-initialised, shape differs", self.mismatched),
                part("unexpected", self.unexpected),
            ]
        )


def read_state_dict(source: str) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Read weights from a file or URL; return (state_dict, the edgeseg checkpoint's ``model`` entry or None).

    Accepts an edgeseg checkpoint, a bare ``state_dict`` (torchvision format), or a dict wrapping one under
    ``state_dict`` or ``model``. Always ``weights_only=True``.
    """
    if source.startswith(("http://", "https://")):
        try:
            obj: Any = torch.hub.load_state_dict_from_url(source, map_location="cpu", weights_only=True)
        except Exception as err:  # network and format errors alike
            raise InputError(f"model.pretrained: cannot load {source}: {err}") from err
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"model.pretrained: file not found: {path}")
        try:
            obj = load_weights_file(path)
        except InputError as err:
            raise InputError(f"model.pretrained: {err}") from None
    is_ckpt = isinstance(obj, dict) and obj.get("format") == "edgeseg-checkpoint"
    if isinstance(obj, dict) and not is_ckpt:
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    state = obj["state_dict"] if is_ckpt else obj
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"model.pretrained: {source} holds no state_dict of tensors")
    return state, (obj.get("model") or {}) if is_ckpt else None


def load_classifier_backbone(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, spec: dict[str, Any]
) -> TransferReport:
    """Load a pretrained classifier's ``backbone.*`` weights into ``model.backbone``, strictly.

    The two backbones must have the same keys with the same shapes; the first key that differs (missing on
    either side, or of another shape; in the model's layer order) is named in the :class:`InputError`, with
    the backbone and width the file was pretrained for (``spec``: the checkpoint's ``model`` entry).
    """
    kw = spec.get("kwargs") or {}
    made_for = f"{source} holds a {kw.get('backbone')} (width_mult {kw.get('width_mult')}) backbone"
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise InputError(f"model.pretrained: {type(model).__name__} has no 'backbone' to load {source} into")
    given = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    own = backbone.state_dict()
    for key in [*own, *(k for k in given if k not in own)]:  # the model's order: the earliest layer first
        if key not in own or key not in given:
            where = "the model's backbone" if key not in own else "the file"
            raise InputError(
                f"model.pretrained: backbone key {key!r} is not in {where}; {made_for}, the model a "
                f"{type(backbone).__name__}"
            )
        if own[key].shape != given[key].shape:
            raise InputError(
                f"model.pretrained: backbone key {key!r} has shape {tuple(given[key].shape)} in the file but "
                f"{tuple(own[key].shape)} in the model; {made_for}"
            )
    backbone.load_state_dict(given, strict=True)
    report = TransferReport(source=source, loaded=[f"backbone.{k}" for k in given])
    report.missing = [k for k in model.state_dict() if not k.startswith("backbone.")]
    report.unexpected = sorted(k for k in state if not k.startswith("backbone."))
    return report


def load_pretrained(model: nn.Module, source: str) -> TransferReport:
    """Load pretrained weights into ``model`` and report what was loaded.

    An edgeseg checkpoint (or any state_dict with ``backbone.*`` keys) loads into the whole model: every
    tensor whose name and shape match, so heads whose class count differs keep their fresh initialisation
    (reported as ``mismatched``) while the rest fine-tunes from the checkpoint. Any other state_dict is taken
    as a torchvision-format classification model and goes to ``model.backbone`` through
    ``edgeseg.models.load_pretrained_backbone`` (its classifier keys are reported as unexpected).
    A pretrained classifier (``edgeseg pretrain``) loads into ``model.backbone`` only, with every key
    matched strictly (:func:`load_classifier_backbone`). Loading nothing at all is an error: the file is for
    a different architecture.
    """
    from edgeseg.models import is_classifier, load_pretrained_backbone

    state, spec = read_state_dict(source)
    if spec is not None and is_classifier(spec):
        return load_classifier_backbone(model, state, source, spec)
    report = TransferReport(source=source)
    if not any(k.startswith("backbone.") for k in state):
        backbone = getattr(model, "backbone", None)
        if backbone is None:
            name = type(model).__name__
            raise InputError(f"model.pretrained: {name} has no 'backbone' to load {source} into")
        r = load_pretrained_backbone(backbone, state)
        report.loaded, report.missing, report.unexpected = r.loaded, r.missing, r.unexpected
        return report
    own = model.state_dict()
    usable = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.mismatched.append(key)
        else:
            usable[key] = value
            report.loaded.append(key)
    report.missing = [k for k in own if k not in state]
    if not usable:
        raise InputError(
            f"model.pretrained: no tensor of {source} matches the model "
            f"(first key there: {next(iter(state))})"
        )
    model.load_state_dict(usable, strict=False)
    return report
