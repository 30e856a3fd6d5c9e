"""Pretraining pieces: classifiers on every backbone, classification datasets and their errors, soft labels
from CutMix/MixUp, top-k metrics, and pretrain checkpoints loading into segmentation models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeseg.checkpoint import make_checkpoint, model_from_checkpoint
from edgeseg.data import DataConfig, build_train_loader, label_shares, mix_batch, soft_targets
from edgeseg.data.classification import (
    NO_LABEL,
    ImageFolderDataset,
    SyntheticObjectDataset,
    build_classification_dataset,
)
from edgeseg.data.mix import cutmix, mixup
from edgeseg.errors import InputError
from edgeseg.metrics import class_metrics, topk_hits
from edgeseg.models import create, create_classifier
from edgeseg.models.backbones import BACKBONES
from edgeseg.train.transfer import freeze, load_pretrained


# ------------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("backbone", ["dsnet", "qdsnet", "mobilenetv2", "resnet18"])
def test_classifier_on_every_student_backbone(backbone: str) -> None:
    model = create_classifier(backbone, num_classes=5, width_mult=1.0).eval()
    with torch.no_grad():
        logits, features = model.forward_features(torch.randn(2, 3, 65, 47))
    assert logits.shape == (2, 5) and set(features) == {"c2", "c3", "c4", "c5"}
    ckpt = make_checkpoint(model, classes=list("abcde"), palette=[[0, 0, 0]] * 5, ignore_index=NO_LABEL)
    rebuilt = model_from_checkpoint(ckpt)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_classifier_bad_arguments() -> None:
    with pytest.raises(InputError, match="unknown backbone 'dsnett'"):
        create_classifier("dsnett", num_classes=3)
    with pytest.raises(InputError, match="at least 2 classes"):
        create_classifier("dsnet", num_classes=1)
    assert "qdsnet" in BACKBONES


def _pretrained(tmp_path: Path, backbone: str, width_mult: float = 1.0) -> tuple[Path, dict]:
    torch.manual_seed(1)
    model = create_classifier(backbone, num_classes=4, width_mult=width_mult)
    ckpt = make_checkpoint(model, classes=list("abcd"), palette=[[0, 0, 0]] * 4, ignore_index=NO_LABEL)
    path = tmp_path / f"{backbone}.pt"
    torch.save(ckpt, path)
    return path, ckpt["state_dict"]


@pytest.mark.parametrize(
    ("backbone", "segmenter"),
    [("dsnet", "lraspp_dsnet"), ("mobilenetv2", "deeplabv3plus_mobilenetv2"), ("qdsnet", "fpn_qdsnet")],
)
def test_pretrained_classifier_loads_into_segmentation_models(
    tmp_path: Path, backbone: str, segmenter: str
) -> None:
    path, state = _pretrained(tmp_path, backbone)
    torch.manual_seed(2)
    model = create(segmenter, num_classes=3)
    head_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    report = load_pretrained(model, str(path))
    own = model.state_dict()
    backbone_keys = [k for k in own if k.startswith("backbone.")]
    assert sorted(report.loaded) == sorted(backbone_keys)
    for key in backbone_keys:
        assert torch.equal(own[key], state[key]), key
    for key, value in head_before.items():  # the segmentation head keeps its fresh initialisation
        assert torch.equal(own[key], value), key
    assert report.unexpected == ["head.bias", "head.weight"]
    early = "backbone.features.1" if backbone == "mobilenetv2" else "backbone.stages.0"
    assert freeze(model, [early]) > 0  # train.freeze names the pretrained early stages


def test_pretrained_classifier_mismatch_names_the_first_differing_key(tmp_path: Path) -> None:
    path, _ = _pretrained(tmp_path, "dsnet", width_mult=0.5)
    expected = r"key 'stages.0.0.0.weight' has shape \(16, 16, 3, 3\) in the file but \(32, 16, 3, 3\).*0.5"
    with pytest.raises(InputError, match=expected):
        load_pretrained(create("lraspp_dsnet", num_classes=3), str(path))
    path, _ = _pretrained(tmp_path, "qdsnet")
    with pytest.raises(InputError, match=r"key 'stem.0.weight' has shape \(32, 3, 4, 4\) .*holds a qdsnet"):
        load_pretrained(create("lraspp_dsnet", num_classes=3), str(path))


# --------------------------------------------------------------------------------------------------- data
def _folder(root: Path, classes: dict[str, int], split: str = "train") -> None:
    for c, (name, count) in enumerate(classes.items()):
        (root / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = np.full((20 + i, 24, 3), 40 * c, dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / name / f"{i}.jpg")


def test_image_folder_dataset(tmp_path: Path) -> None:
    _folder(tmp_path, {"cat": 2, "dog": 3})
    (tmp_path / "train" / "notes.txt").write_text("not a class")
    ds = ImageFolderDataset(tmp_path, "train")
    assert ds.classes == ["cat", "dog"] and ds.labels == [0, 0, 1, 1, 1] and len(ds) == 5
    image, labels = ds[3]
    assert image.shape == (21, 24, 3) and labels.shape == (21, 24) and (labels == 1).all()
    assert "imagefolder" in ds.describe() and ds.ignore_index == NO_LABEL


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no 'val' folder"):
        _folder(tmp_path, {"cat": 1, "dog": 1})
        ImageFolderDataset(tmp_path, "val")
    single = tmp_path / "single"
    _folder(single, {"cat": 2})
    with pytest.raises(InputError, match="at least 2 class folders, found only 'cat'"):
        ImageFolderDataset(single, "train")
    empty = tmp_path / "empty"
    _folder(empty, {"cat": 1, "dog": 0})
    with pytest.raises(InputError, match=r"class folder .*empty/train/dog holds no images"):
        ImageFolderDataset(empty, "train")
    broken = tmp_path / "broken"
    _folder(broken, {"cat": 1, "dog": 1})
    (broken / "train" / "dog" / "0.jpg").write_bytes(b"not a jpeg")
    ds = ImageFolderDataset(broken, "train")
    with pytest.raises(InputError, match=r"cannot read image .*broken/train/dog/0.jpg"):
        ds[1]
    with pytest.raises(InputError, match="data.num_classes is 3 but"):
        build_classification_dataset(broken, "train", DataConfig(num_classes=3))


def test_synthetic_objects_are_balanced_deterministic_and_distinct_per_split() -> None:
    ds = SyntheticObjectDataset("train", 14, 48, seed=0)
    assert ds.num_classes == 7 and ds.labels == list(range(7)) * 2
    image, labels = ds[9]
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8 and (labels == 2).all()
    assert np.array_equal(image, SyntheticObjectDataset("train", 14, 48, seed=0)[9][0])
    assert not np.array_equal(image, SyntheticObjectDataset("val", 14, 48, seed=0)[9][0])
    cfg = DataConfig(synthetic_train=21, synthetic_val=7, synthetic_size=40)
    assert len(build_classification_dataset("synthetic", "train", cfg)) == 21
    assert len(build_classification_dataset("synthetic", "val", cfg)) == 7


def test_classification_batches_go_through_the_segmentation_loader(tmp_path: Path) -> None:
    _folder(tmp_path, {"cat": 2, "dog": 2})
    ds = ImageFolderDataset(tmp_path, "train")
    loader = build_train_loader(ds, DataConfig(crop_size=32, batch_size=4), seed=0)
    images, maps = next(iter(loader))
    assert images.shape == (4, 3, 32, 32)
    shares = label_shares(maps, 2, NO_LABEL)  # padding of the 24-pixel-wide images carries no label
    assert (maps == NO_LABEL).any() and torch.allclose(shares.sum(1), torch.ones(4))
    assert sorted(shares.argmax(1).tolist()) == [0, 0, 1, 1]


# ----------------------------------------------------------------------------------------------- mixing
def _maps(n: int = 4, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.arange(n)
    images = ids.float().view(n, 1, 1, 1).expand(n, 3, size, size).clone()
    return images, ids.view(n, 1, 1).expand(n, size, size).clone()


def test_label_shares_ignore_unlabelled_pixels() -> None:
    maps = torch.tensor([[[0, 1], [1, NO_LABEL]], [[NO_LABEL] * 2] * 2])
    shares = label_shares(maps, 3, NO_LABEL)
    assert torch.allclose(shares, torch.tensor([[1 / 3, 2 / 3, 0.0], [0.0, 0.0, 0.0]]))


def test_cutmix_soft_labels_follow_the_box_area() -> None:
    images, maps = _maps()
    batch = cutmix(images, maps, torch.Generator().manual_seed(3))
    soft = soft_targets(batch, 4, NO_LABEL)
    for k in range(4):
        pasted = (batch.target_a[k] != k).float().mean()
        assert soft[k, k] == pytest.approx(1.0 - float(pasted))
    assert (soft < 1).any() and torch.allclose(soft.sum(1), torch.ones(4))


def test_mixup_soft_labels_blend_by_lambda() -> None:
    images, maps = _maps()
    batch = mixup(images, maps, torch.Generator().manual_seed(4))
    soft = soft_targets(batch, 4, NO_LABEL)
    partner = batch.target_b[:, 0, 0]
    for k in range(4):
        expected = torch.zeros(4)
        expected[k] += batch.lam
        expected[partner[k]] += 1 - batch.lam
        assert torch.allclose(soft[k], expected)
    plain = mix_batch(images, maps, torch.Generator().manual_seed(0))
    assert torch.equal(soft_targets(plain, 4, NO_LABEL), torch.eye(4))


# --------------------------------------------------------------------------------------------- metrics
def test_topk_hits() -> None:
    scores = np.array([[0.1, 0.5, 0.2, 0.0, 0.3, 0.9], [0.9, 0.1, 0.1, 0.2, 0.0, 0.0]])
    # sample 0: label 4 ranks 3rd; sample 1: label 0 ranks 1st
    assert topk_hits(scores, np.array([4, 0]), (1, 2, 3, 5)) == {1: 1, 2: 1, 3: 2, 5: 2}
    m = class_metrics(topk_hits(scores, np.array([4, 0])), 2)
    assert (m.top1, m.top5, m.images) == (0.5, 1.0, 2)
    with pytest.raises(ValueError, match="labels must lie in"):
        topk_hits(scores, np.array([6, 0]))
