"""The training loop: exact resume, run-folder safety, self-contained checkpoints, the objective hooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeseg.checkpoint import load_checkpoint, model_from_checkpoint
from edgeseg.config import Recipe
from edgeseg.errors import InputError
from edgeseg.train import SupervisedObjective, build_datasets, fit
from edgeseg.train.evaluate import evaluate_file
from edgeseg.train.setup import RunPieces, SetupContext

TINY = {
    "model": {"name": "unet", "kwargs": {"base_channels": 8, "depth": 2}},
    "data": {
        "synthetic_train": 16,
        "synthetic_val": 4,
        "synthetic_size": 48,
        "crop_size": 48,
        "batch_size": 4,
    },
    "augment": {"cutmix_prob": 0.5, "mixup_prob": 0.5, "rotation": 10.0},
    "schedule": {"warmup_iters": 2},
    "train": {"epochs": 2, "seed": 3, "device": "cpu"},
}
QUIET = {"progress": False, "log": lambda message: None}


def _recipe(**train: object) -> Recipe:
    raw = json.loads(json.dumps(TINY))
    raw["train"].update(train)
    return Recipe.from_dict(raw)


def _epoch_lines(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time_s", "images_per_s")} for r in lines]


def test_resume_mid_epoch_and_at_epoch_end_matches_a_straight_run(tmp_path: Path) -> None:
    recipe = _recipe()
    straight = fit(recipe, tmp_path / "straight", **QUIET)
    assert straight.finished and [r["epoch"] for r in straight.history] == [1, 2]
    split = tmp_path / "split"
    first = fit(recipe, split, stop_after_steps=2, **QUIET)  # interrupted inside epoch 1 (4 steps/epoch)
    assert not first.finished and load_checkpoint(split / "last.pt")["train_state"]["iteration"] == 2
    fit(recipe, split, resume=True, stop_after_steps=4, **QUIET)  # ... then at the end of epoch 1
    assert load_checkpoint(split / "last.pt")["train_state"]["epoch"] == 1
    fit(recipe, split, resume=True, **QUIET)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(split / "last.pt")
    for key, value in a["state_dict"].items():
        assert torch.allclose(value.float(), b["state_dict"][key].float(), atol=1e-6), key
    assert a["train_state"]["step"] == b["train_state"]["step"] == 8
    assert _epoch_lines(tmp_path / "straight") == _epoch_lines(split)  # losses, lr, metrics, one line each


def test_resuming_a_finished_run_builds_nothing_and_a_longer_schedule_continues(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = fit(_recipe(epochs=1), run, **QUIET)
    lines = (run / "metrics.jsonl").read_text()
    calls: list[bool] = []

    def setup(ctx: SetupContext) -> RunPieces:
        calls.append(ctx.resume)
        return RunPieces()

    again = fit(_recipe(epochs=1), run, resume=True, setup=setup, **QUIET)
    assert calls == [] and again.history == [] and (run / "metrics.jsonl").read_text() == lines
    assert (again.best_miou, again.best_epoch, again.finished) == (first.best_miou, 1, True)
    longer = fit(_recipe(epochs=2), run, resume=True, setup=setup, **QUIET)
    assert calls == [True] and [r["epoch"] for r in longer.history] == [2]


def test_run_folder_is_not_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit(_recipe(epochs=1), run, **QUIET)
    with pytest.raises(InputError, match="already holds a run.*--resume.*--force"):
        fit(_recipe(epochs=1), run, **QUIET)
    with pytest.raises(InputError, match="cannot resume"):
        fit(_recipe(epochs=1), tmp_path / "empty", resume=True, **QUIET)
    old = (run / "metrics.jsonl").read_text()
    fit(_recipe(epochs=1, seed=5), run, force=True, **QUIET)
    new = (run / "metrics.jsonl").read_text()
    assert len(new.splitlines()) == 1 and new != old  # started again, old lines gone


def test_checkpoints_are_self_contained(tmp_path: Path) -> None:
    result = fit(_recipe(epochs=1), tmp_path / "run", **QUIET)
    best = load_checkpoint(result.best_path)
    assert best["model"]["name"] == "unet" and best["model"]["kwargs"]["num_classes"] == len(best["classes"])
    assert len(best["palette"]) == len(best["classes"]) and best["ignore_index"] == 255
    assert best["recipe"]["data"]["synthetic_size"] == 48 and "train_state" not in best
    state = load_checkpoint(result.last_path)["train_state"]
    assert {"optimizer", "scheduler", "scaler", "rng", "epoch", "best_miou"} <= set(state)
    assert isinstance(model_from_checkpoint(result.best_path), nn.Module)
    metrics, classes = evaluate_file(result.best_path)  # nothing but the path
    assert classes == best["classes"]
    assert metrics.miou == pytest.approx(result.best_miou, abs=1e-9)


class _AdapterObjective:
    """A distillation-like objective: label loss plus an L2 term through an extra (adapter) module."""

    def __init__(self, supervised: SupervisedObjective, adapter: nn.Module) -> None:
        self.supervised, self.adapter = supervised, adapter

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, features = model(batch.images, features=True)
        ce, _ = self.supervised(lambda x: logits, batch)
        feat = self.adapter(features["decoder"]).square().mean()
        return ce + feat, {"ce": ce, "feat": feat}


def test_objective_extra_modules_and_reference(tmp_path: Path) -> None:
    from edgeseg.models import create

    recipe = _recipe(epochs=1)
    seen: dict[str, object] = {}

    def factory(recipe: Recipe, num_classes: int, log) -> nn.Module:
        return create("unet", num_classes=num_classes, base_channels=8, depth=2)

    def setup(ctx: SetupContext) -> RunPieces:
        seen.update(model=ctx.model, classes=list(ctx.train_ds.classes), resume=ctx.resume)
        num_classes = ctx.train_ds.num_classes
        adapter = nn.Conv2d(ctx.model.feature_channels["decoder"], 4, 1)
        seen["adapter"], seen["before"] = adapter, adapter.weight.detach().clone()
        supervised = SupervisedObjective.from_recipe(ctx.recipe, num_classes, ctx.train_ds.ignore_index)
        teacher = create("unet", num_classes=num_classes, base_channels=8, depth=2)
        return RunPieces(
            objective=_AdapterObjective(supervised, adapter),
            extra_modules={"adapter": adapter},
            reference=("teacher", teacher),
        )

    fit(recipe, tmp_path / "run", model_factory=factory, setup=setup, **QUIET)
    adapter, before = seen["adapter"], seen["before"]
    assert seen["classes"] == build_datasets(recipe)[0].classes and seen["resume"] is False
    assert not torch.equal(adapter.weight.detach().cpu(), before)  # trained with the model
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert torch.equal(
        last["train_state"]["extra_modules"]["adapter"]["weight"], adapter.weight.detach().cpu()
    )
    assert not any(k.startswith("adapter") for k in last["state_dict"])  # not part of the saved model
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines] == ["reference", "epoch"]
    assert lines[0]["name"] == "teacher" and 0.0 <= lines[0]["miou"] <= 1.0
    assert {"loss", "loss_ce", "loss_feat", "lr", "miou", "pixel_acc", "per_class_iou"} <= set(lines[1])


def test_random_draws_of_the_setup_hook_do_not_change_the_run(tmp_path: Path) -> None:
    """A hook (a teacher, adapters) may draw random numbers: the run still reads the same batches, with the
    same augmentation, as a plain run of the recipe, so both end with the same weights and figures."""
    from edgeseg.train.setup import RunPieces

    recipe = _recipe(epochs=1)
    fit(recipe, tmp_path / "plain", **QUIET)
    fit(recipe, tmp_path / "hooked", setup=lambda ctx: (torch.randn(1000), RunPieces())[1], **QUIET)
    a = load_checkpoint(tmp_path / "plain" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "hooked" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _epoch_lines(tmp_path / "plain") == _epoch_lines(tmp_path / "hooked")


def test_a_bad_setup_leaves_the_run_folder_untouched(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit(_recipe(epochs=1), run, **QUIET)
    before = {p.name: p.read_bytes() for p in run.iterdir()}

    def broken(ctx) -> None:
        raise InputError("teacher does not fit")

    with pytest.raises(InputError, match="teacher does not fit"):
        fit(_recipe(epochs=1), run, force=True, setup=broken, **QUIET)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_the_evaluator_is_a_parameter(tmp_path: Path) -> None:
    """The loop keeps the checkpoint its evaluator scores best, whatever the task (here: a made-up score that
    peaks at epoch 2 of 3); the figures it returns are logged as they are."""
    scores = iter([0.2, 0.7, 0.5])

    def evaluator(run, model: nn.Module) -> dict:
        assert model is run.model
        return {"miou": next(scores), "pixel_acc": 0.0, "top1": 0.5}

    result = fit(_recipe(epochs=3), tmp_path / "run", evaluator=evaluator, **QUIET)
    assert result.best_epoch == 2 and result.best_miou == 0.7
    assert load_checkpoint(result.best_path)["epoch"] == 2
    assert [r["top1"] for r in _epoch_lines(tmp_path / "run")] == [0.5, 0.5, 0.5]
