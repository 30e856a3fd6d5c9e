"""Weight selection: a narrow student initialised from its wider teacher (``student_init: teacher``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgeseg.checkpoint import load_checkpoint
from edgeseg.distill.inherit import decompose_conv, inherit_weights, select_tensor, spread_indices
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


def test_student_init_from_another_checkpoint_selects_from_it_while_the_teacher_teaches(
    tmp_path: Path,
) -> None:
    """``student_init: path.pt`` (a teacher assistant): the student starts as a selection of that model, the
    losses still use ``distill.teacher``; a missing file or other classes are errors naming the file."""
    teacher = _lraspp_teacher(tmp_path / "teacher.pt")
    assistant = _teacher(tmp_path / "assistant.pt", name="lraspp_dsnet", width_mult=1.5)
    recipe = str(_recipe(tmp_path, teacher))
    common = ["--set", "model.name=lraspp_dsnet", "--set", "model.kwargs={}",
              "--set", "distill.weights.feature=0", "--set", "train.epochs=1", "--quiet"]  # fmt: skip
    result = _invoke(recipe, "-o", str(tmp_path / "run"), *common, "--set", "optim.lr=0",
                     "--set", f"distill.student_init={assistant}")  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    output = result.output.replace("\n", "")  # the console wraps long lines
    assert f"initialised from {assistant} by weight selection" in output
    assert f"teacher: lraspp_dsnet from {teacher}" in output
    saved = load_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    source = load_checkpoint(assistant)["state_dict"]
    stem = "backbone.stem.0.weight"
    assert torch.equal(saved[stem], source[stem][spread_indices(source[stem].shape[0], saved[stem].shape[0])])

    missing = tmp_path / "nowhere.pt"
    result = _invoke(recipe, "-o", str(tmp_path / "r1"), *common, "--set", f"distill.student_init={missing}")
    assert result.exit_code != 0 and str(missing) in str(result.exception)
    message = str(result.exception)
    assert f"distill.student_init: checkpoint not found: {missing} (train that model first" in message
    other = _teacher(
        tmp_path / "other.pt", classes=["background", "cat", "dog"], name="lraspp_dsnet", width_mult=1.0
    )
    result = _invoke(recipe, "-o", str(tmp_path / "r2"), *common, "--set", f"distill.student_init={other}")
    assert (
        result.exit_code != 0 and str(other) in str(result.exception) and "3 classes" in str(result.exception)
    )
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2" / "last.pt").exists()


def test_decompose_conv_is_exact_for_rank_one_slices_and_least_squares_otherwise() -> None:
    torch.manual_seed(0)
    exact = torch.randn(6, 4, 1, 1) * torch.randn(1, 4, 3, 3)  # every input channel's slice is rank 1
    dw, pw = decompose_conv(exact)
    assert dw.shape == (4, 1, 3, 3) and pw.shape == (6, 4, 1, 1)
    assert torch.allclose(pw * dw.permute(1, 0, 2, 3), exact, atol=1e-5)
    assert torch.allclose(dw.flatten(1).norm(dim=1), torch.ones(4)) and (dw.flatten(1).sum(1) >= 0).all()
    full = torch.randn(6, 4, 3, 3)
    dw, pw = decompose_conv(full)
    error = (pw * dw.permute(1, 0, 2, 3) - full).norm()
    # Eckart–Young: the residual of the best rank-1 fit is the norm of the other singular values
    sv = torch.linalg.svdvals(full.permute(1, 0, 2, 3).reshape(4, 6, 9))
    assert torch.isclose(error, sv[:, 1:].norm(), rtol=1e-4)


def _rank_one_unet(seed: int) -> torch.nn.Module:
    """A U-Net whose 3×3 convolutions (after the first) are exactly depthwise-separable in weight."""
    from edgeseg.models.layers import ConvBNAct

    torch.manual_seed(seed)
    teacher = create("unet", num_classes=8, base_channels=16)
    for m in teacher.modules():
        if isinstance(m, ConvBNAct) and m[0].kernel_size == (3, 3) and m[0].in_channels > 3:
            n, c = m[0].weight.shape[:2]
            m[0].weight.data = torch.randn(n, c, 1, 1) * torch.randn(1, c, 3, 3) / c**0.5
    return teacher


def test_unet_ds_decomposed_from_a_unet_starts_near_its_outputs() -> None:
    teacher = _rank_one_unet(0)
    student = create("unet_ds", num_classes=8, width_mult=0.25)
    scratch = create("unet_ds", num_classes=8, width_mult=0.25)
    report = inherit_weights(student, teacher)
    assert len(report.decomposed) == 21 and not report.kept  # 17 DSConv + 4 upsampling layers
    assert "21 layers decomposed" in report.summary()
    x = torch.rand(8, 3, 64, 64)
    with torch.no_grad():
        logits = [m(x) for m in (teacher, student, scratch)]

    def similarity(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = (t - t.mean(dim=(0, 2, 3), keepdim=True) for t in (a, b))
        return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()

    assert similarity(logits[0], logits[1]) > 0.4  # about 0.57: BatchNorm and ReLU between the two halves
    assert abs(similarity(logits[0], logits[2])) < 0.1


def test_deeplabv3plus_head_is_decomposed_into_the_separable_student() -> None:
    teacher = create("deeplabv3plus", num_classes=8, backbone="resnet18")
    student = create("deeplabv3plus_mobilenetv2", num_classes=8)
    report = inherit_weights(student, teacher)
    assert report.decomposed == [
        "aspp.branches.1",
        "aspp.branches.2",
        "aspp.branches.3",
        "decoder.0",
        "decoder.1",
    ]
    state = student.state_dict()
    assert torch.equal(
        state["decoder.1.1.1.running_var"], teacher.state_dict()["decoder.1.1.running_var"][::2]
    )
