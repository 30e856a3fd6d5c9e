"""A tiny timm-style registry of segmentation models.

Builders are plain functions decorated with ``@register_model``; ``create(name, **kw)`` calls one, binds the
builder's defaults into the full keyword set and stores it on the model (``model_name``, ``model_kwargs``), so
``create(model.model_name, **model.model_kwargs)`` rebuilds the same architecture even if defaults change.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from edgeseg.errors import InputError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its function name; its keyword arguments become the model's kwargs."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered segmentation models, sorted."""
    _import_builders()
    return sorted(_MODELS)


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` (e.g. ``num_classes=21``).

    Raises ``InputError`` for an unknown name (with near-miss suggestions) or an argument the builder does not
    take. The returned model carries ``model_name`` and ``model_kwargs`` (all builder arguments, defaults
    included, JSON-able).
    """
    _import_builders()
    if name not in _MODELS:
        near = difflib.get_close_matches(name, _MODELS, n=3)
        known = ", ".join(near) if near else ", ".join(sorted(_MODELS))
        hint = f"; did you mean {known}?" if near else f"; known models: {known}"
        raise InputError(f"unknown model {name!r}{hint}")
    fn = _MODELS[name]
    sig = inspect.signature(fn)
    unknown = sorted(set(kwargs) - set(sig.parameters))
    if unknown:
        raise InputError(
            f"model {name!r} does not take {', '.join(map(repr, unknown))}; "
            f"its arguments are {', '.join(sig.parameters)}"
        )
    bound = sig.bind(**kwargs)
    bound.apply_defaults()
    full = {key: _jsonable(value) for key, value in bound.arguments.items()}
    try:
        model = fn(**full)
    except ValueError as err:
        raise InputError(f"cannot build model {name!r}: {err}") from err
    model.model_name = name
    model.model_kwargs = full
    return model


def describe_model(name: str, kwargs: Mapping[str, Any]) -> str:
    """The model's name and the arguments that differ from its builder's defaults, for reports and tables:
    ``lraspp_dsnet ×4 width``, ``unet_ds ×0.25 width (depth=3)``, ``unet (base_channels=8, depth=2)``.
    ``num_classes`` is left out; an unknown name comes back as it is."""
    _import_builders()
    if name not in _MODELS:
        return name
    defaults = {k: p.default for k, p in inspect.signature(_MODELS[name]).parameters.items()}
    changed = {
        k: v for k, v in kwargs.items()
        if k != "num_classes" and (k not in defaults or _jsonable(defaults[k]) != _jsonable(v))
    }  # fmt: skip
    text = name
    if "width_mult" in changed:
        text += f" ×{changed.pop('width_mult'):g} width"
    if changed:
        text += " (" + ", ".join(f"{k}={v}" for k, v in changed.items()) + ")"
    return text


def _jsonable(value: Any) -> Any:
    """Tuples become lists so ``model_kwargs`` round-trips through JSON and YAML unchanged."""
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _import_builders() -> None:
    """Import the architecture modules, whose decorators fill the registry (on first use, not at import)."""
    from edgeseg.models import deeplab, fcn, students, unet  # noqa: F401
