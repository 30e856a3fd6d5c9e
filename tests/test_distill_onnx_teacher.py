"""An ONNX file as the teacher: same losses as the PyTorch teacher, foreign files, clear errors."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.data import normalize
from edgeseg.data.mix import MixedBatch
from edgeseg.distill.config import DistillConfig, LossWeights
from edgeseg.distill.objective import DistillObjective
from edgeseg.distill.onnx_teacher import OnnxTeacher
from edgeseg.errors import InputError
from edgeseg.export import to_onnx
from edgeseg.models import create
from edgeseg.runtime.metadata import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.train.losses import build_loss
from edgeseg.train.objective import FeatureForward

CLASSES = ["background", "a", "b", "c"]
LOGITS = LossWeights(ce=1.0, kd=1.0, cwd=0.5, relation=0.3)
# Statistics a teacher from elsewhere might have been trained with (not the student's ImageNet ones).
OTHER_MEAN, OTHER_STD = [0.5, 0.5, 0.5], [0.25, 0.3, 0.2]


def _teacher() -> nn.Module:
    torch.manual_seed(0)
    return create("unet", num_classes=len(CLASSES), base_channels=8, depth=2).eval()


def _student() -> nn.Module:
    torch.manual_seed(1)
    return create("unet_ds", num_classes=len(CLASSES), width_mult=0.25, depth=2)


def _batch() -> tuple[MixedBatch, torch.Tensor]:
    """A batch normalized with the student's (ImageNet) statistics, and its RGB images in [0, 1]."""
    g = torch.Generator().manual_seed(2)
    rgb = torch.rand(2, 3, 40, 48, generator=g)
    target = torch.randint(0, len(CLASSES), (2, 40, 48), generator=g)
    target[:, :3] = 255
    return MixedBatch(normalize(rgb, IMAGENET_MEAN, IMAGENET_STD), target, target, 1.0), rgb


def _losses(teacher: nn.Module, logit_stride: int = 1) -> dict[str, float]:
    cfg = DistillConfig(teacher="t", weights=LOGITS, kd_tau=2.0, cwd_tau=4.0, logit_stride=logit_stride)
    objective = DistillObjective(teacher, cfg, build_loss("ce"))
    batch, _ = _batch()
    total, parts = objective(FeatureForward(_student()), batch)
    return {"total": float(total.detach()), **{k: float(v.detach()) for k, v in parts.items()}}


def _export(
    model: nn.Module,
    path: Path,
    mean: list[float] = IMAGENET_MEAN,
    std: list[float] = IMAGENET_STD,
    **options,
) -> Path:
    to_onnx(model, path, metadata={"classes": CLASSES, "mean": list(mean), "std": list(std)}, **options)
    return path


def _strip_metadata(path: Path, out: Path) -> Path:
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(out))
    return out


class _Renormalized(nn.Module):
    """The PyTorch teacher fed as a teacher trained with other statistics must be: RGB → its own."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        s = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return self.model(normalize(x * s + m, self.mean, self.std))


def _open(path: Path, **keys) -> OnnxTeacher:
    teacher = OnnxTeacher.open(path, provider="cpu", **keys)
    return teacher.check(classes=CLASSES, mean=IMAGENET_MEAN, std=IMAGENET_STD)


@pytest.mark.parametrize("logit_stride", [1, 4])
def test_edgeseg_export_gives_the_losses_of_the_pytorch_teacher(tmp_path: Path, logit_stride: int) -> None:
    teacher = _teacher()
    path = _export(teacher, tmp_path / "t.onnx", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    want = _losses(teacher, logit_stride)
    got = _losses(_open(path), logit_stride)
    assert set(got) == {"total", "ce", "kd", "cwd", "relation"}
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-4), key


def test_teacher_with_other_statistics_gets_its_own_normalization(tmp_path: Path) -> None:
    teacher = _teacher()
    path = _export(teacher, tmp_path / "t.onnx", mean=OTHER_MEAN, std=OTHER_STD)
    want = _losses(_Renormalized(teacher, OTHER_MEAN, OTHER_STD))
    onnx_teacher = _open(path)
    got = _losses(onnx_teacher)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-4), key
    batch, _ = _batch()
    with torch.no_grad():  # fed the student's batch as it is, the teacher would answer otherwise
        assert (onnx_teacher(batch.images) - teacher(batch.images)).abs().max() > 1e-2


def test_foreign_file_works_with_normalization_and_classes_from_the_recipe(tmp_path: Path) -> None:
    teacher = _teacher()
    path = _strip_metadata(_export(teacher, tmp_path / "t.onnx"), tmp_path / "foreign.onnx")
    with pytest.raises(InputError, match=r"foreign\.onnx carries no edgeseg normalization.*teacher_mean"):
        OnnxTeacher.open(path, provider="cpu")
    onnx_teacher = _open(path, mean=OTHER_MEAN, std=OTHER_STD, num_classes=len(CLASSES))
    want = _losses(_Renormalized(teacher, OTHER_MEAN, OTHER_STD))
    got = _losses(onnx_teacher)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-4), key


class _QuarterScores(nn.Module):
    """A model from elsewhere: class scores at a quarter of the input size."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.model(x), 4)


def test_lower_resolution_scores_are_resized_to_the_input(tmp_path: Path) -> None:
    coarse = _QuarterScores(_teacher()).eval()
    path = tmp_path / "coarse.onnx"
    torch.onnx.export(
        coarse,
        torch.randn(1, 3, 48, 48),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h", 3: "w"}},
        dynamo=False,
    )
    onnx_teacher = _open(path, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    batch, _ = _batch()
    got = onnx_teacher(batch.images)
    with torch.no_grad():
        want = F.interpolate(coarse(batch.images), size=(40, 48), mode="bilinear", align_corners=False)
    assert got.shape == (2, len(CLASSES), 40, 48)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_mismatched_classes_name_both_counts(tmp_path: Path) -> None:
    path = _export(_teacher(), tmp_path / "t.onnx")
    foreign = _strip_metadata(path, tmp_path / "foreign.onnx")
    teacher = OnnxTeacher.open(foreign, provider="cpu", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    with pytest.raises(InputError, match=r"foreign\.onnx gives 4 classes, but the data has 3"):
        teacher.check(classes=CLASSES[:3], mean=IMAGENET_MEAN, std=IMAGENET_STD)
    with pytest.raises(InputError, match=r"teacher_num_classes is 6, but teacher .*foreign\.onnx gives 4"):
        OnnxTeacher.open(foreign, provider="cpu", mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes=6)
    with pytest.raises(InputError, match=r"t\.onnx was trained on 4 classes .* the data has 3 classes"):
        OnnxTeacher.open(path, provider="cpu").check(
            classes=CLASSES[:3], mean=IMAGENET_MEAN, std=IMAGENET_STD
        )


def test_labels_output_and_fixed_size_are_refused(tmp_path: Path) -> None:
    labels = _export(_teacher(), tmp_path / "labels.onnx", output="argmax")
    with pytest.raises(InputError, match=r"labels\.onnx returns class labels .*class scores"):
        OnnxTeacher.open(labels, provider="cpu")
    fixed = _export(_teacher(), tmp_path / "fixed.onnx", static_size=(32, 32))
    batch, _ = _batch()
    with pytest.raises(InputError, match=r"fixed\.onnx takes a fixed 32x32 input.* batch is 40x48"):
        _open(fixed)(batch.images)


def test_feature_kd_needs_a_pytorch_teacher(tmp_path: Path) -> None:
    with pytest.raises(
        InputError,
        match=r"^distill.weights.feature > 0 needs a PyTorch teacher checkpoint; "
        r"t\.onnx is an ONNX file",
    ):
        DistillConfig(
            teacher="t.onnx", weights=LossWeights(feature=1.0), feature_pairs={"decoder": "decoder"}
        )
    with pytest.raises(InputError, match="student_init=teacher needs a PyTorch teacher checkpoint"):
        DistillConfig(teacher="t.onnx", student_init="teacher")
    onnx_teacher = _open(_export(_teacher(), tmp_path / "t.onnx"))
    pairs = {"decoder": "decoder"}
    cfg = DistillConfig(teacher="t.pt", weights=LossWeights(feature=1.0), feature_pairs=pairs)
    with pytest.raises(InputError, match="needs a PyTorch teacher with feature maps"):
        DistillObjective(onnx_teacher, cfg, build_loss("ce"), adapters=nn.Identity())


def test_teacher_keys_are_checked_when_the_recipe_is_read() -> None:
    with pytest.raises(InputError, match=r"distill.teacher_provider: expected one of .*'cuda'.*got 'gpu'"):
        DistillConfig(teacher="t.onnx", teacher_provider="gpu")
    with pytest.raises(InputError, match=r"distill.teacher_mean: expected 3 numbers"):
        DistillConfig(teacher="t.onnx", teacher_mean=[0.5, 0.5])
    with pytest.raises(InputError, match=r"distill.teacher_std: expected numbers > 0"):
        DistillConfig(teacher="t.onnx", teacher_std=[0.2, 0.0, 0.2])
    with pytest.raises(InputError, match=r"distill.teacher_num_classes: expected an integer >= 0"):
        DistillConfig(teacher="t.onnx", teacher_num_classes=-1)


def test_an_onnx_teacher_labels_unlabelled_images_as_the_pytorch_teacher_does(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from edgeseg.data.config import DataConfig
    from edgeseg.distill.unlabelled import PseudoLabelled, UnlabelledImages

    folder = tmp_path / "unlabelled"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, shape in (("a.png", (40, 48, 3)), ("b.png", (56, 40, 3))):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / name)
    source = UnlabelledImages(str(folder), 0, 2, DataConfig(root=str(tmp_path), crop_size=32), seed=0)
    torch.manual_seed(0)  # a per-pixel teacher: its labels vary across the image (a random U-Net's do not)
    teacher = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, len(CLASSES), 1)).eval()
    keys = {"classes": CLASSES, "palette": [[i, i, i] for i in range(4)], "ignore_index": 255}
    keys.update(mean=IMAGENET_MEAN, std=IMAGENET_STD)
    want = PseudoLabelled(source, teacher, **keys)
    got = PseudoLabelled(source, _open(_export(teacher, tmp_path / "t.onnx")), **keys)
    for index in range(2):
        assert want[index][1].shape == got[index][1].shape == want[index][0].shape[:2]
        assert (want[index][1] == got[index][1]).mean() > 0.999
    assert len(np.unique(np.concatenate([want[i][1].ravel() for i in range(2)]))) > 1
