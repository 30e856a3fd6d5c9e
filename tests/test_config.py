"""Recipe loading: sections, --set overrides, strict keys with near-miss suggestions, round trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from edgeseg.config import Recipe, apply_override, load_recipe
from edgeseg.errors import InputError


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(
        "model: {name: unet, kwargs: {base_channels: 8}}\n"
        "optim: {name: sgd, lr: 1e-2}\n"
        "train: {epochs: 2, lr_mult: {backbone: 0.1}}\n"
        "augment: {scale: [0.5, 1.5]}\n"
    )
    return path


def test_file_values_and_defaults(recipe_file: Path) -> None:
    r = load_recipe(recipe_file)
    assert r.model.name == "unet" and r.model.kwargs == {"base_channels": 8}
    assert r.optim.name == "sgd" and r.optim.lr == pytest.approx(0.01)  # "1e-2" is a string to YAML 1.1
    assert r.train.epochs == 2 and r.train.lr_mult == {"backbone": 0.1}
    assert r.augment.scale == (0.5, 1.5)
    assert r.schedule.name == "poly" and r.data.root == "synthetic"


def test_overrides_parse_yaml_values(recipe_file: Path) -> None:
    r = load_recipe(
        recipe_file,
        [
            "train.epochs=5",
            "train.amp=true",
            "model.kwargs.depth=3",
            "train.freeze=[backbone]",
            "data.root=/x y",
        ],
    )
    assert r.train.epochs == 5 and r.train.amp is True
    assert r.model.kwargs == {"base_channels": 8, "depth": 3}
    assert r.train.freeze == ["backbone"]
    assert r.data.root == "/x y"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epoch=3", "did you mean 'train.epochs'"),
        ("trian.epochs=3", "did you mean 'train'"),
        ("epochs=3", "did you mean 'train.epochs'"),
        ("optim.learning_rate=0.1", "optim.learning_rate"),
        ("optim.name=adam", "did you mean 'adamw'"),
    ],
)
def test_unknown_keys_name_the_closest(recipe_file: Path, override: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        load_recipe(recipe_file, [override])


def test_unknown_key_in_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  eval_intervall: 2\n")
    with pytest.raises(InputError, match=r"bad\.yaml.*'train\.eval_intervall'.*'train\.eval_interval'"):
        load_recipe(path)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epochs=abc", "'train.epochs' must be an integer"),
        ("train.amp=3", "'train.amp' must be true or false"),
        ("optim.lr=fast", "'optim.lr' must be a number"),
        ("train.epochs", "key=value"),
        ("train.epochs.x=1", "is a value, not a section"),
        ("data.batch_size=0", "data.batch_size"),
        ("train.lr_mult=[1]", "'train.lr_mult' must be a mapping"),
    ],
)
def test_bad_values_are_clear(recipe_file: Path, override: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        load_recipe(recipe_file, [override])


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_recipe(bad)


@dataclass
class _Extra:
    weight: float = 1.0
    pairs: dict[str, str] = field(default_factory=dict)


def test_registered_sections(recipe_file: Path) -> None:
    r = load_recipe(recipe_file, ["extra.weight=2", "extra.pairs.c4=c5"], sections={"extra": _Extra})
    assert r.section("extra") == _Extra(2.0, {"c4": "c5"})
    with pytest.raises(InputError, match="'extra.wieght'.*'extra.weight'"):
        load_recipe(recipe_file, ["extra.wieght=2"], sections={"extra": _Extra})
    with pytest.raises(InputError, match="unknown key 'extra'"):
        load_recipe(recipe_file, ["extra.weight=2"])  # not declared: an error
    with pytest.raises(InputError, match="no 'other' section"):
        r.section("other")


def test_to_dict_round_trips(recipe_file: Path) -> None:
    r = load_recipe(recipe_file, ["extra.weight=3"], sections={"extra": _Extra})
    d = r.to_dict()
    assert d["augment"]["scale"] == [0.5, 1.5]  # plain lists for YAML/JSON
    assert yaml.safe_load(yaml.safe_dump(d)) == d
    assert Recipe.from_dict(d, {"extra": _Extra}) == r
    kept = Recipe.from_dict(d, strict=False)  # a reader that does not know the section keeps it raw
    assert kept.sections["extra"] == {"weight": 3.0, "pairs": {}}
    assert kept.to_dict() == d


def test_apply_override_creates_nested_keys() -> None:
    raw: dict = {"train": {"epochs": 1}}
    apply_override(raw, "model.kwargs.width=0.5")
    apply_override(raw, "train.epochs=4")
    assert raw == {"train": {"epochs": 4}, "model": {"kwargs": {"width": 0.5}}}


TRAIN_RECIPES = [
    "deeplabv3plus_r50", "unet", "fcn8s", "lraspp_dsnet", "lraspp_mobilenetv2", "deeplabv3plus_mobilenetv2",
    "unet_ds", "fpn_qdsnet",
]  # fmt: skip


@pytest.mark.parametrize("name", TRAIN_RECIPES)
def test_shipped_recipes_load_and_build(name: str) -> None:
    from edgeseg.models import create

    recipe = load_recipe(Path(__file__).parent.parent / "recipes" / f"{name}.yaml")
    assert recipe.data.root == "synthetic"  # runs out of the box
    model = create(recipe.model.name, num_classes=8, **recipe.model.kwargs)
    assert model.num_classes == 8
