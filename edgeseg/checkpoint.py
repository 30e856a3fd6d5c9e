"""Self-contained edgeseg checkpoints.

A checkpoint is a plain dict saved with ``torch.save`` and loaded with ``weights_only=True``:

``format``        "edgeseg-checkpoint"
``version``       1
``model``         {"name": registry name, "kwargs": dict passed to ``models.create`` (includes num_classes)};
                  a pretrained classifier (``edgeseg pretrain``) is ``{"name": "classifier", "kwargs": dict
                  passed to ``models.create_classifier``}`` and its ``ignore_index`` is -1 (no pixel labels)
``state_dict``    the model's ``state_dict()``
``classes``       list of class names (len == num_classes)
``palette``       list of [r, g, b] per class
``mean``, ``std`` per-channel normalization of RGB images scaled to [0, 1]
``ignore_index``  label value excluded from loss and metrics
``recipe``        the resolved recipe (plain dict) the model was trained with; its ``data`` section says what
                  the model was trained and evaluated on (exports copy it into the ONNX metadata)
``epoch``         epochs completed
``metrics``       last evaluation metrics (dict), may be empty
``train_state``   only in resumable checkpoints: optimizer, scheduler, scaler, RNG states, ...

Later commands need nothing but the checkpoint's path. Defaults (ImageNet normalization, ignore index 255) are
``edgeseg.runtime.metadata``'s; a checkpoint written before ``mean``/``std``/``ignore_index`` were stored gets
them from there when loaded, here and nowhere else.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from edgeseg.errors import InputError
from edgeseg.fileio import atomic_path
from edgeseg.runtime.metadata import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD

FORMAT = "edgeseg-checkpoint"
VERSION = 1


def make_checkpoint(
    model: torch.nn.Module,
    *,
    classes: list[str],
    palette: list[list[int]],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    ignore_index: int = IGNORE_INDEX,
    recipe: dict[str, Any] | None = None,
    epoch: int = 0,
    metrics: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the checkpoint dict for an edgeseg model (one made by ``edgeseg.models.create``)."""
    name = getattr(model, "model_name", None)
    kwargs = getattr(model, "model_kwargs", None)
    if name is None or kwargs is None:
        raise ValueError("model has no model_name/model_kwargs; build it with edgeseg.models.create")
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": {"name": name, "kwargs": dict(kwargs)},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "classes": list(classes),
        "palette": [list(map(int, c)) for c in palette],
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "ignore_index": int(ignore_index),
        "recipe": recipe or {},
        "epoch": int(epoch),
        "metrics": metrics or {},
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    return ckpt


def save_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``ckpt`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(ckpt, tmp)
    return target


def load_weights_file(path: Path, what: str = "weights file") -> Any:
    """``torch.load(path, weights_only=True)``; a file that is not plain weights is a one-line ``InputError``.

    A pickle that would call code (``__reduce__`` of any class, ``os.system`` ...) is refused with the
    names of the globals it references: those names are what a user needs to judge the file. PyTorch's own
    message advises ``weights_only=False``, which is exactly what must not be done with an untrusted file.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and unpickler errors all mean "not a weights file"
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise InputError(
                f"{path}: refused, it holds code as well as data (Python objects {', '.join(unsafe)} that "
                "unpickling would call); edgeseg loads weights only"
            ) from None
        detail = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise InputError(f"{path} is not a readable {what}: {detail}") from err


def _unsafe_globals(path: Path) -> list[str]:
    """The globals of a checkpoint that ``weights_only`` loading does not allow ([] if none or unreadable)."""
    try:
        return sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path)))
    except Exception:  # not a zip checkpoint at all: the caller reports it as unreadable
        return []


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load an edgeseg checkpoint safely (``weights_only=True``), with clear errors for bad files."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"checkpoint not found: {p}")
    ckpt = load_weights_file(p, what="edgeseg checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(f"{p} is not an edgeseg checkpoint (no 'format: {FORMAT}' entry)")
    ckpt.setdefault("mean", list(IMAGENET_MEAN))  # checkpoints from before normalization was stored
    ckpt.setdefault("std", list(IMAGENET_STD))
    ckpt.setdefault("ignore_index", IGNORE_INDEX)
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any] | str | os.PathLike) -> torch.nn.Module:
    """Rebuild the model of a checkpoint (dict or path) with its weights, in eval mode.

    A segmentation model comes from the registry (``models.create``), a classifier from
    ``models.create_classifier``.
    """
    from edgeseg.models import create, create_classifier, is_classifier

    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    spec = ckpt["model"]
    if is_classifier(spec):
        model = create_classifier(**spec["kwargs"])
    else:
        model = create(spec["name"], **spec["kwargs"])
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.eval()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
