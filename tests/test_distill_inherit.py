"""Weight selection: a narrow student initialised from its wider teacher (``student_init: teacher``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgeseg.checkpoint import load_checkpoint
from edgeseg.distill.inherit import inherit_weights, select_tensor, spread_indices
from edgeseg.errors import InputError
from edgeseg.models import create
from tests.test_distill_cli import _invoke, _recipe, _teacher


def test_spread_indices_are_even_and_start_at_zero() -> None:
    assert spread_indices(8, 2).tolist() == [0, 4]
    assert spread_indices(6, 4).tolist() == [0, 1, 3, 4]
    assert spread_indices(5, 5).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="cannot pick 3 of 2"):
        spread_indices(2, 3)


def test_select_tensor_takes_the_same_indices_on_every_dimension() -> None:
    t = torch.arange(8 * 4 * 3 * 3).reshape(8, 4, 3, 3)
    s = select_tensor(t, torch.Size([2, 2, 3, 3]))
    assert torch.equal(s, t[[0, 4]][:, [0, 2]])


def test_narrow_student_is_a_coherent_sub_network_of_the_teacher() -> None:
    torch.manual_seed(0)
    teacher = create("lraspp_dsnet", num_classes=8, width_mult=2.0).eval()
    student = create("lraspp_dsnet", num_classes=8).eval()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    report = inherit_weights(student, teacher)
    assert not report.kept and report.selected and report.copied
    state, t_state = student.state_dict(), teacher.state_dict()
    assert any(not torch.equal(before[k], state[k]) for k in report.selected)
    # the stem's output channels are the next layer's input channels, with their BatchNorm statistics
    stem = "backbone.stem.0.weight"
    picked = spread_indices(t_state[stem].shape[0], state[stem].shape[0])
    assert torch.equal(state[stem], t_state[stem][picked])
    assert torch.equal(state["backbone.stem.1.running_mean"], t_state["backbone.stem.1.running_mean"][picked])
    nxt = "backbone.stages.0.0.0.weight"
    rows = spread_indices(t_state[nxt].shape[0], state[nxt].shape[0])
    assert torch.equal(state[nxt], t_state[nxt][rows][:, picked])


def test_same_width_student_copies_the_teacher_exactly() -> None:
    torch.manual_seed(0)
    teacher = create("lraspp_dsnet", num_classes=8).eval()
    torch.manual_seed(1)
    student = create("lraspp_dsnet", num_classes=8).eval()
    report = inherit_weights(student, teacher)
    assert not report.selected and not report.kept
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(student(x), teacher(x))


def test_other_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="no tensor of the teacher fits"):
        inherit_weights(create("lraspp_dsnet", num_classes=8), create("unet", num_classes=8, base_channels=8))


def _lraspp_teacher(path: Path) -> Path:
    return _teacher(path, name="lraspp_dsnet", width_mult=2.0)


def test_distill_run_starts_from_the_teacher_weights(tmp_path: Path) -> None:
    teacher = _lraspp_teacher(tmp_path / "teacher.pt")
    recipe = str(_recipe(tmp_path, teacher))
    common = ["--set", "model.name=lraspp_dsnet", "--set", "model.kwargs={}",
              "--set", "distill.weights.feature=0", "--set", "distill.student_init=teacher",
              "--set", "train.epochs=1", "--quiet"]  # fmt: skip
    result = _invoke(recipe, "-o", str(tmp_path / "run"), *common, "--set", "optim.lr=0")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "initialised from the teacher by weight selection" in result.output
    # lr 0: the weights are the selected ones (BatchNorm statistics move, parameters do not)
    saved = load_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    teacher_state = load_checkpoint(teacher)["state_dict"]
    stem = "backbone.stem.0.weight"
    picked = spread_indices(teacher_state[stem].shape[0], saved[stem].shape[0])
    assert torch.equal(saved[stem], teacher_state[stem][picked])
    # a resumed run continues from last.pt: no second weight selection over the trained student
    result = _invoke("--resume", str(tmp_path / "run"), "--set", "train.epochs=2", "--quiet")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "weight selection" not in result.output


def test_student_init_value_and_unfit_teacher_are_clear_errors(tmp_path: Path) -> None:
    teacher = _lraspp_teacher(tmp_path / "teacher.pt")
    recipe = str(_recipe(tmp_path, teacher))
    result = _invoke(recipe, "-o", str(tmp_path / "r"), "--set", "distill.student_init=teachr", "--quiet")
    assert result.exit_code != 0 and "distill.student_init" in str(result.exception)
    # the recipe's student is a U-Net: nothing of an LR-ASPP teacher fits it
    result = _invoke(recipe, "-o", str(tmp_path / "r2"), "--set", "distill.student_init=teacher",
                     "--set", "distill.weights.feature=0", "--quiet")  # fmt: skip
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)
    assert "distill.student_init=teacher" in str(result.exception) and str(teacher) in str(result.exception)
