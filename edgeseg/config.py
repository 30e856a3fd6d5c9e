"""Training recipes: one dataclass per concern, read from YAML with strict keys and ``--set`` overrides.

A recipe file has the sections ``model``, ``data``, ``augment``, ``optim``, ``schedule`` and ``train``; any
section may be left out (its defaults apply). Other parts of edgeseg add their own sections without editing
this module: they pass ``sections={"distill": DistillConfig}`` to :func:`load_recipe` and read the parsed
dataclass back with ``recipe.section("distill")``. A key that no dataclass declares is an error naming the
closest valid key, so a typo never silently falls back to a default.

Values are parsed with ``yaml.safe_load`` only, both in files and in ``--set a.b=c`` overrides.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from edgeseg.data.config import AugmentConfig, DataConfig
from edgeseg.errors import InputError


@dataclass
class ModelConfig:
    """Which network to build: a registry name, its constructor arguments, optional pretrained weights.

    ``num_classes`` is filled in from the dataset and must not be given in ``kwargs``.
    ``pretrained`` is a torchvision-format classification ``state_dict``, an edgeseg checkpoint (its backbone,
    and its heads when the class count matches) or an ``http(s)://`` URL of a state_dict.
    """

    name: str = "deeplabv3plus"
    kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None


@dataclass
class OptimConfig:
    """Optimizer: AdamW (``betas``) or SGD (``momentum``, ``nesterov``); ``lr`` is the base learning rate."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class ScheduleConfig:
    """Per-iteration learning-rate schedule: linear warmup, then poly or cosine decay.

    Warmup starts at ``warmup_ratio``·lr and lasts ``warmup_iters`` iterations, or ``warmup_epochs``
    epochs when ``warmup_iters`` is 0. Poly decays as ``(1 - t)^power``; cosine as ``0.5·(1 + cos(π·t))``;
    both end at ``min_lr_ratio``·lr.
    """

    name: Literal["poly", "cosine"] = "poly"
    power: float = 0.9
    warmup_epochs: float = 0.0
    warmup_iters: int = 0
    warmup_ratio: float = 0.1
    min_lr_ratio: float = 0.0


@dataclass
class TrainConfig:
    """The training run itself.

    ``loss``: ``ce`` (ignore-aware cross-entropy, optional ``class_weights``), ``dice`` or ``ce+dice``
    (CE + ``dice_weight``·Dice). ``freeze``: parameter-name prefixes (``backbone``, ``backbone.layer1``)
    frozen, with their BatchNorms kept in eval mode. ``lr_mult``: prefix → learning-rate multiplier (the
    longest matching prefix wins). ``amp``: bf16 autocast on CPU, fp16 with a gradient scaler on CUDA.
    ``grad_clip``: max global gradient norm (0 disables). ``device``: ``auto`` (CUDA when present), ``cpu``,
    ``cuda`` or ``cuda:N``. ``checkpoint_interval``: also write ``last.pt`` every N iterations inside an
    epoch (0: at epoch ends only). ``eval_interval``: evaluate every N epochs (the last epoch always does).
    ``sync_bn``: SyncBatchNorm across ranks under torchrun (CUDA only).
    """

    epochs: int = 10
    eval_interval: int = 1
    loss: Literal["ce", "dice", "ce+dice"] = "ce"
    class_weights: list[float] | None = None
    dice_weight: float = 1.0
    amp: bool = False
    channels_last: bool = False
    grad_clip: float = 0.0
    freeze: list[str] = field(default_factory=list)
    lr_mult: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    sync_bn: bool = False
    checkpoint_interval: int = 0


CORE_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "augment": AugmentConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
}


@dataclass
class Recipe:
    """A resolved training recipe. ``sections`` holds the extra sections (name → dataclass or raw dict)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sections: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        """The extra section ``name`` (as parsed), or an error naming the sections present."""
        if name not in self.sections:
            have = ", ".join(sorted(self.sections)) or "none"
            raise InputError(f"recipe has no '{name}' section (extra sections present: {have})")
        return self.sections[name]

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples) that :meth:`from_dict` and YAML/JSON round-trip."""
        out = {name: _plain(dataclasses.asdict(getattr(self, name))) for name in CORE_SECTIONS}
        for name, value in self.sections.items():
            out[name] = _plain(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value)
        return out

    @classmethod
    def from_dict(
        cls,
        raw: Mapping[str, Any],
        sections: Mapping[str, type] | None = None,
        *,
        strict: bool = True,
        source: str = "recipe",
    ) -> Recipe:
        """Build a recipe from a nested dict, checking every key and value type.

        ``sections`` declares extra top-level sections and their dataclasses. With ``strict=False`` other
        unknown top-level sections are kept as raw dicts (used to read the recipe stored in a checkpoint
        written by a command that declared more sections); unknown keys inside known sections are always
        errors.
        """
        if not isinstance(raw, Mapping):
            raise InputError(f"{source}: a recipe must be a mapping of sections, got {type(raw).__name__}")
        extra = dict(sections or {})
        known = {**CORE_SECTIONS, **extra}
        kwargs: dict[str, Any] = {}
        parsed_extra: dict[str, Any] = {}
        for key, value in raw.items():
            if key in CORE_SECTIONS:
                kwargs[key] = _build(CORE_SECTIONS[key], value, key, source)
            elif key in extra:
                parsed_extra[key] = _build(extra[key], value, key, source)
            elif not strict:
                parsed_extra[key] = value
            else:
                raise _unknown_key(str(key), "", list(known), source)
        for key, kind in extra.items():
            parsed_extra.setdefault(key, kind())
        return cls(**kwargs, sections=parsed_extra)


def load_recipe(
    path: str | Path,
    overrides: Iterable[str] = (),
    sections: Mapping[str, type] | None = None,
) -> Recipe:
    """Read a YAML recipe, apply ``--set key=value`` overrides and validate everything.

    Errors (missing file, bad YAML, unknown key, wrong value type) are :class:`InputError` naming the file or
    the override and, for unknown keys, the closest valid key.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"recipe not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{p} is not valid YAML: {err}") from err
    Recipe.from_dict(raw, sections, source=str(p))
    overrides = list(overrides)
    if not overrides:
        return Recipe.from_dict(raw, sections, source=str(p))
    for item in overrides:
        apply_override(raw, item)
    return Recipe.from_dict(raw, sections, source="--set " + " ".join(overrides))


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``a.b.c=value`` override to a nested dict in place (value parsed with yaml.safe_load)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise InputError(f"--set expects key=value with a dotted key such as train.epochs=3, got '{item}'")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as err:
        raise InputError(f"--set {item}: the value is not valid YAML: {err}") from err
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise InputError(f"--set {item}: '{'.'.join(parts[: i + 1])}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def data_settings(
    overrides: Iterable[str],
    base: Mapping[str, Any] | None = None,
    root: str | None = None,
    source: str = "data settings",
) -> DataConfig:
    """A ``data`` section for commands that read a dataset outside a recipe (``eval``, ``validate``).

    ``base`` (e.g. a checkpoint's recipe ``data``) with the ``data.key=value`` ``overrides`` applied;
    ``root``, when given, replaces the root. Unknown keys are errors naming ``source`` and the closest
    valid key.
    """
    raw: dict[str, Any] = {"data": dict(base or {})}
    for item in overrides:
        apply_override(raw, item)
    cfg = Recipe.from_dict(raw, strict=False, source=source).data
    return cfg if root is None else dataclasses.replace(cfg, root=root)


def valid_keys(kind: type, prefix: str = "") -> list[str]:
    """All dotted keys a dataclass accepts (nested dataclasses expanded), for suggestions and docs."""
    out: list[str] = []
    hints = typing.get_type_hints(kind)
    for f in dataclasses.fields(kind):
        name = f"{prefix}{f.name}"
        out.append(name)
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out.extend(valid_keys(tp, name + "."))
    return out


def _build(kind: type, value: Any, where: str, source: str) -> Any:
    """Instantiate dataclass ``kind`` from a mapping, checking keys and coercing values."""
    if value is None:
        return kind()
    if not isinstance(value, Mapping):
        raise InputError(f"{source}: '{where}' must be a mapping of keys, got {value!r}")
    hints = typing.get_type_hints(kind)
    names = [f.name for f in dataclasses.fields(kind) if f.init]
    kwargs = {}
    for key, item in value.items():
        if key not in names:
            raise _unknown_key(str(key), where, names, source, kind)
        kwargs[key] = _coerce(item, hints[key], f"{where}.{key}", source)
    try:
        return kind(**kwargs)
    except InputError as err:  # a section's own __post_init__ checks, which name the key
        raise InputError(f"{source}: {err}") from err
    except (TypeError, ValueError) as err:
        raise InputError(f"{source}: bad '{where}' section: {err}") from err


def _unknown_key(key: str, where: str, names: list[str], source: str, kind: type | None = None) -> InputError:
    full = f"{where}.{key}" if where else key
    guess = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if guess:
        hint = f"did you mean '{where + '.' if where else ''}{guess[0]}'?"
    else:
        everywhere = [k for name, sec in CORE_SECTIONS.items() for k in valid_keys(sec, name + ".")]
        leaf = difflib.get_close_matches(key, [k.rsplit(".", 1)[-1] for k in everywhere], n=1, cutoff=0.75)
        nested = [k for k in everywhere if leaf and k.rsplit(".", 1)[-1] == leaf[0]]
        hint = f"did you mean '{nested[0]}'?" if nested else "valid keys here: " + ", ".join(names)
    return InputError(f"{source}: unknown key '{full}'; {hint}")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the type hint ``tp`` (ints widen to float; "1e-3" parses as a float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    def bad(expected: str) -> InputError:
        return InputError(f"{source}: '{key}' must be {expected}, got {value!r}")

    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key, source)
            except InputError as err:
                errors.append(err)
        raise errors[0] if len(errors) == 1 else bad(" or ".join(_type_name(a) for a in args))
    if origin is Literal:
        if value in args:
            return value
        guess = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        raise InputError(
            f"{source}: '{key}' must be one of {', '.join(repr(a) for a in args)}, got {value!r}{hint}"
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise bad("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad("a string")
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise bad(f"a list of {len(args)} values")
            pairs = enumerate(zip(value, args, strict=True))
            return tuple(_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in pairs)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise bad("a mapping")
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, val_tp, f"{key}.{k}", source) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, key, source)
    if isinstance(tp, type) and issubclass(tp, Path):
        if isinstance(value, str):
            return Path(value)
        raise bad("a path")
    return value


def _type_name(tp: Any) -> str:
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _plain(value: Any) -> Any:
    """Tuples → lists and Paths → str, recursively, so the dict is YAML/JSON-friendly."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
