"""Building and writing the edgeseg metadata of an exported model (keys: ``edgeseg.runtime.metadata``)."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import onnx

from edgeseg import __version__
from edgeseg.errors import InputError
from edgeseg.runtime.image import voc_palette
from edgeseg.runtime.metadata import ModelMetadata

if TYPE_CHECKING:
    from torch import nn


def _field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ModelMetadata)]


def build_metadata(
    module: nn.Module,
    *,
    num_classes: int,
    overrides: ModelMetadata | Mapping[str, Any] | None = None,
) -> ModelMetadata:
    """Metadata describing ``module``: what an edgeseg model says about itself, then ``overrides``.

    edgeseg models (with ``model_name``/``model_kwargs``/``stride``) pad internally to their stride; a
    foreign module defaults to ``pads_internally=False`` with stride 32 unless overridden. Classes default
    to their indices and the palette to the VOC colour map. Export fields are filled in later by
    :func:`finalize_metadata`.
    """
    is_edgeseg = hasattr(module, "model_name") and hasattr(module, "model_kwargs")
    meta = ModelMetadata(
        edgeseg_version=__version__,
        model_name=str(getattr(module, "model_name", type(module).__name__)),
        model_args=dict(getattr(module, "model_kwargs", {}) or {}),
        classes=[str(i) for i in range(num_classes)],
        palette=voc_palette(num_classes),
        stride=int(getattr(module, "stride", 32)),
        pads_internally=is_edgeseg,
    )
    if isinstance(overrides, ModelMetadata):
        overrides = {k: getattr(overrides, k) for k in _field_names()}
    for key, value in (overrides or {}).items():
        if key not in _field_names():
            close = difflib.get_close_matches(key, _field_names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"unknown metadata key {key!r}{hint}")
        setattr(meta, key, value)
    if len(meta.classes) != num_classes:
        raise InputError(f"metadata names {len(meta.classes)} classes but the model outputs {num_classes}")
    if len(meta.palette) != num_classes:
        raise InputError(f"metadata palette has {len(meta.palette)} colours for {num_classes} classes")
    return meta


def finalize_metadata(
    meta: ModelMetadata,
    *,
    output: str,
    preprocess: bool,
    opset: int,
    static_size: tuple[int, int] | None,
    upsample: int = 1,
) -> ModelMetadata:
    """Return a copy of ``meta`` with the fields that describe this export and its time stamp."""
    return dataclasses.replace(
        meta,
        output=output,
        upsample=int(upsample),
        preprocess="graph" if preprocess else "none",
        input_layout="NHWC" if preprocess else "NCHW",
        input_dtype="uint8" if preprocess else "float32",
        color_order="RGB",
        opset=int(opset),
        static_size=tuple(static_size) if static_size else None,
        exported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def write_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> None:
    """Store ``meta`` in ``model.metadata_props``, replacing entries with the same keys."""
    props = meta.to_props()
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)


def read_metadata(model: onnx.ModelProto | str | os.PathLike) -> ModelMetadata:
    """Parse the edgeseg metadata of a model (a proto or a path; weights are not loaded for a path)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(os.fspath(model), load_external_data=False)
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
