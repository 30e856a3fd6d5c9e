"""The shipped distillation recipes: they load, name an existing teacher recipe, keep the student-alone
schedule, and pair a student with at most a tenth of its teacher's FLOPs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edgeseg.config import load_recipe
from edgeseg.distill.config import DistillConfig
from edgeseg.distill.run import alone_epochs, load_distill_recipe
from edgeseg.errors import InputError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
DISTILL_RECIPES = sorted(RECIPES.glob("distill_*.yaml"))
SHARED = ("data", "augment", "optim", "schedule", "train")


def _student_alone(recipe) -> Path:
    """The plain training recipe of the same student model (same name and kwargs) on the same dataset."""
    matches = []
    for path in sorted(RECIPES.glob("*.yaml")):
        if path.name.startswith("distill_"):
            continue
        try:
            other = load_recipe(path)
        except InputError:  # a recipe with sections of another command (e.g. the pipeline's)
            continue
        same_data = other.data.synthetic_variant == recipe.data.synthetic_variant
        if other.model.name == recipe.model.name and other.model.kwargs == recipe.model.kwargs and same_data:
            matches.append(path)
    assert matches, f"no student-alone recipe for {recipe.model.name} {recipe.model.kwargs}"
    return matches[0]


def test_the_issue_recipes_are_shipped() -> None:
    names = {p.name for p in DISTILL_RECIPES}
    assert {"distill_deeplabv3plus.yaml", "distill_unet.yaml"} <= names


@pytest.mark.parametrize("path", DISTILL_RECIPES, ids=lambda p: p.name)
def test_recipe_loads_and_names_an_existing_teacher_recipe(path: Path) -> None:
    recipe = load_distill_recipe(path)
    cfg = recipe.section("distill")
    assert isinstance(cfg, DistillConfig)
    assert cfg.teacher.endswith(".pt")
    teacher_recipe = RECIPES.parent / cfg.teacher_recipe
    assert teacher_recipe.is_file(), f"{path.name}: teacher recipe {cfg.teacher_recipe} does not exist"
    # the expected checkpoint is the teacher recipe's default run folder (runs/<recipe name>/best.pt)
    assert Path(cfg.teacher) == Path("runs") / teacher_recipe.stem / "best.pt"
    teacher = load_recipe(teacher_recipe)
    assert teacher.model.name != recipe.model.name or teacher.model.kwargs != recipe.model.kwargs
    w = cfg.weights
    # a recipe distils through a teacher term, or through the teacher's labels on unlabelled images
    labels = bool(cfg.unlabelled) and cfg.unlabelled_mode == "pseudo"
    teaches = w.kd + w.cwd + w.relation + w.feature > 0 or labels
    assert teaches, f"{path.name} distils nothing"


@pytest.mark.parametrize("path", DISTILL_RECIPES, ids=lambda p: p.name)
def test_recipe_keeps_the_student_alone_schedule(path: Path) -> None:
    """The same sections, with the epochs that give the student alone the distilled run's optimizer steps
    (more than the recipe's own when the teacher labels unlabelled images, ``alone_epochs``)."""
    recipe = load_distill_recipe(path)
    alone = load_recipe(_student_alone(recipe))
    recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, epochs=alone_epochs(recipe)))
    for name in SHARED:
        assert dataclasses.asdict(getattr(recipe, name)) == dataclasses.asdict(getattr(alone, name)), (
            f"{path.name}: section {name} differs from the student-alone recipe"
        )


@pytest.mark.parametrize("path", DISTILL_RECIPES, ids=lambda p: p.name)
def test_student_has_at_most_a_tenth_of_the_teacher_flops(path: Path) -> None:
    from edgeseg.models import complexity, create

    recipe = load_distill_recipe(path)
    teacher = load_recipe(RECIPES.parent / recipe.section("distill").teacher_recipe)
    _, student_gmacs = complexity(create(recipe.model.name, num_classes=8, **recipe.model.kwargs), (64, 64))
    _, teacher_gmacs = complexity(create(teacher.model.name, num_classes=8, **teacher.model.kwargs), (64, 64))
    assert student_gmacs <= teacher_gmacs / 10


INHERITING = [
    p for p in DISTILL_RECIPES if load_distill_recipe(p).section("distill").student_init == "teacher"
]


def test_a_recipe_inherits_the_teacher_weights() -> None:
    assert sorted(p.name for p in INHERITING) == ["distill_capacity_unet.yaml", "distill_lraspp_dsnet.yaml"]


@pytest.mark.parametrize("path", INHERITING, ids=lambda p: p.name)
def test_student_init_from_teacher_fits_the_teacher_recipe(path: Path) -> None:
    from edgeseg.distill.inherit import inherit_weights
    from edgeseg.models import create

    recipe = load_distill_recipe(path)
    teacher = load_recipe(RECIPES.parent / recipe.section("distill").teacher_recipe)
    report = inherit_weights(
        create(recipe.model.name, num_classes=8, **recipe.model.kwargs),
        create(teacher.model.name, num_classes=8, **teacher.model.kwargs),
    )
    assert not report.kept, f"{path.name}: tensors the teacher cannot fill: {report.kept[:3]}"
