"""Folder layouts (Pascal-VOC, generic images/+masks/, Cityscapes), classes.txt, and every bad-input error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeseg.data import (
    CITYSCAPES_CLASSES,
    VOC_CLASSES,
    DataConfig,
    build_dataset,
    detect_layout,
    read_classes_file,
    voc_palette,
)
from edgeseg.errors import InputError

H, W = 12, 16


def _image(path: Path, seed: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def _mask(path: Path, labels: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(labels.astype(np.uint8), mode="L")
    if palette:
        img = img.convert("P")
        img.putpalette([v for rgb in voc_palette(256) for v in rgb])
    img.save(path)


def _labels(seed: int, num_classes: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    labels = np.random.default_rng(seed).integers(0, num_classes, size)
    labels[0, :] = 255  # an ignore border, as VOC has
    return labels


def _voc(root: Path, ids: dict[str, list[str]], num_classes: int = 21) -> dict[str, np.ndarray]:
    masks = {}
    for k, image_id in enumerate(sorted({i for v in ids.values() for i in v})):
        _image(root / "JPEGImages" / f"{image_id}.jpg", k)
        masks[image_id] = _labels(k, num_classes)
        _mask(root / "SegmentationClass" / f"{image_id}.png", masks[image_id], palette=True)
    for split, names in ids.items():
        (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return masks


def test_voc_layout_reads_palette_masks_with_default_classes(tmp_path: Path) -> None:
    masks = _voc(tmp_path, {"train": ["a", "b"], "val": ["c"]})
    assert detect_layout(tmp_path) == ("voc", tmp_path)
    train = build_dataset(tmp_path, "train")
    assert (train.layout, len(train), train.num_classes) == ("voc", 2, 21)
    assert train.classes == VOC_CLASSES and train.palette[1] == [128, 0, 0] and train.ignore_index == 255
    image, mask = train[1]
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    assert mask.dtype == np.int64 and np.array_equal(mask, masks["b"])
    assert [p.stem for p in build_dataset(tmp_path, "val").files] == ["c"]


def test_voc_classes_file_gives_names_count_and_palette(tmp_path: Path) -> None:
    _voc(tmp_path, {"train": ["a"], "val": ["b"]}, num_classes=3)
    (tmp_path / "classes.txt").write_text("# my classes\nsky 0 0 255\nroad 128 64 128\n\ncar\n")
    ds = build_dataset(tmp_path, "train")
    assert ds.classes == ["sky", "road", "car"] and ds.num_classes == 3
    assert ds.palette == [[0, 0, 255], [128, 64, 128], voc_palette(3)[2]]
    with pytest.raises(InputError, match="num_classes is 5 but .*classes.txt lists 3"):
        build_dataset(tmp_path, "train", DataConfig(num_classes=5))


def test_voc_devkit_root_and_ratio_split_without_imagesets(tmp_path: Path) -> None:
    inner = tmp_path / "VOC2012"
    _voc(inner, {"all": [f"im{i}" for i in range(10)]})
    for f in (inner / "ImageSets" / "Segmentation").iterdir():
        f.unlink()
    (inner / "ImageSets" / "Segmentation").rmdir()
    assert detect_layout(tmp_path) == ("voc", inner)
    cfg = DataConfig(split_ratio=0.7)
    train, val = build_dataset(tmp_path, "train", cfg), build_dataset(tmp_path, "val", cfg)
    stems = {p.stem for p in train.files}
    assert len(stems) == 7 and len(val) == 3 and stems.isdisjoint(p.stem for p in val.files)
    assert stems == {p.stem for p in build_dataset(tmp_path, "train", cfg).files}  # fixed seed


def test_voc_errors_name_the_file_and_value(tmp_path: Path) -> None:
    _voc(tmp_path, {"train": ["a", "b"]})
    bad = _labels(1, 21)
    bad[3, 4] = 30
    _mask(tmp_path / "SegmentationClass" / "b.png", bad, palette=True)
    ds = build_dataset(tmp_path, "train")
    ds[0]
    with pytest.raises(InputError, match=r"b\.png: label value 30 is >= num_classes \(21\)"):
        ds[1]
    with pytest.raises(InputError, match=r"split file .*val\.txt does not exist"):
        build_dataset(tmp_path, "val")
    (tmp_path / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nzzz\n")
    with pytest.raises(InputError, match="'zzz'.*JPEGImages"):
        build_dataset(tmp_path, "train")


def _generic(root: Path, stems: list[str], split: str | None, num_classes: int = 4) -> dict[str, np.ndarray]:
    sub = Path(split) if split else Path()
    masks = {}
    for k, stem in enumerate(stems):
        _image(root / "images" / sub / f"{stem}.png", k)
        masks[stem] = _labels(k, num_classes)
        _mask(root / "masks" / sub / f"{stem}.png", masks[stem])
    (root / "classes.txt").write_text("\n".join(f"c{i}" for i in range(num_classes)) + "\n")
    return masks


def test_generic_layout_with_split_folders(tmp_path: Path) -> None:
    masks = _generic(tmp_path, ["x", "y"], "train")
    _generic(tmp_path, ["z"], "val")
    train = build_dataset(tmp_path, "train")
    assert (train.layout, len(train), train.classes) == ("generic", 2, ["c0", "c1", "c2", "c3"])
    assert np.array_equal(train[0][1], masks["x"])
    assert len(build_dataset(tmp_path, "val")) == 1
    with pytest.raises(InputError, match=r"split folder .*test does not exist .*\['train', 'val'\]"):
        build_dataset(tmp_path, "test")


def test_generic_ratio_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    _generic(tmp_path, [f"s{i:02d}" for i in range(10)], None)
    cfg = DataConfig(split_ratio=0.8, split_seed=3)
    train, val = build_dataset(tmp_path, "train", cfg), build_dataset(tmp_path, "val", cfg)
    assert len(train) == 8 and len(val) == 2
    assert set(train.files).isdisjoint(val.files)
    assert train.files == build_dataset(tmp_path, "train", cfg).files
    other = {tuple(build_dataset(tmp_path, "val", DataConfig(split_seed=s)).files) for s in range(5)}
    assert len(other) > 1  # the seed decides the split
    with pytest.raises(InputError, match="only splits 'train' and 'val'"):
        build_dataset(tmp_path, "test", cfg)


def test_generic_rgb_masks_are_mapped_through_the_palette(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "a.png", 0)
    labels = np.random.default_rng(0).integers(0, 2, (H, W))
    colours = np.array([[0, 0, 0], [10, 200, 30]], dtype=np.uint8)
    (tmp_path / "masks").mkdir()
    Image.fromarray(colours[labels]).save(tmp_path / "masks" / "a.png")
    (tmp_path / "classes.txt").write_text("bg 0 0 0\nleaf 10 200 30\n")
    ds = build_dataset(tmp_path, "train", DataConfig(split_ratio=1.0))
    assert np.array_equal(ds[0][1], labels)
    (tmp_path / "classes.txt").write_text("bg 0 0 0\nleaf 10 200 31\n")
    with pytest.raises(InputError, match=r"a\.png: colour \[10, 200, 30\] is not in the class palette"):
        build_dataset(tmp_path, "train", DataConfig(split_ratio=1.0))[0]


def test_generic_bad_inputs(tmp_path: Path) -> None:
    _generic(tmp_path, ["a", "b"], "train")
    (tmp_path / "masks" / "train" / "b.png").unlink()
    with pytest.raises(InputError, match=r"image .*train/b\.png has no mask"):
        build_dataset(tmp_path, "train")
    _mask(tmp_path / "masks" / "train" / "b.png", np.zeros((H + 1, W), dtype=np.int64))
    with pytest.raises(InputError, match=r"mask .*b\.png is 16x13 but its image .*b\.png is 16x12"):
        build_dataset(tmp_path, "train")
    _mask(tmp_path / "masks" / "train" / "b.png", np.full((H, W), 7))
    with pytest.raises(
        InputError, match=r"b\.png: label value 7 is >= num_classes \(4\) and is not ignore_index"
    ):
        build_dataset(tmp_path, "train")[1]
    (tmp_path / "images" / "train" / "b.png").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match=r"cannot read image .*train/b\.png"):
        build_dataset(tmp_path, "train")


def test_generic_classes_must_be_known(tmp_path: Path) -> None:
    _generic(tmp_path, ["a"], "train", num_classes=3)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(InputError, match="number of classes is unknown.*classes.txt.*data.num_classes"):
        build_dataset(tmp_path, "train")
    ds = build_dataset(tmp_path, "train", DataConfig(num_classes=3))
    assert ds.classes == ["class_0", "class_1", "class_2"]
    (tmp_path / "classes.txt").write_text("a 1 2\n")
    with pytest.raises(InputError, match=r"classes.txt line 1: expected 'name' or 'name r g b'"):
        build_dataset(tmp_path, "train")


def test_empty_and_unknown_layouts(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"dataset folder .*nowhere does not exist"):
        build_dataset(tmp_path / "nowhere", "train")
    with pytest.raises(InputError, match=r"unknown dataset layout in .*JPEGImages.*leftImg8bit.*images/"):
        build_dataset(tmp_path, "train")
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "masks" / "train").mkdir(parents=True)
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(InputError, match=r"images/train holds no images"):
        build_dataset(tmp_path, "train")


def _city(root: Path, split: str, city: str, frame: str, label_ids: np.ndarray) -> None:
    stem = f"{city}_{frame}"
    _image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", 0)
    _mask(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label_ids)


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path: Path) -> None:
    ids = np.zeros((H, W), dtype=np.int64)
    ids[:, 0], ids[:, 1], ids[:, 2], ids[:, 3], ids[:, 4] = 7, 26, 33, 4, 23  # road car bicycle static sky
    _city(tmp_path, "train", "aachen", "000000_000019", ids)
    _city(tmp_path, "train", "bremen", "000001_000019", ids)
    ds = build_dataset(tmp_path, "train")
    assert (ds.layout, len(ds), ds.num_classes, ds.classes) == ("cityscapes", 2, 19, CITYSCAPES_CLASSES)
    mask = ds[0][1]
    assert mask[:, :5].tolist() == [[0, 13, 18, 255, 10]] * H
    assert (mask[:, 5:] == 255).all()  # id 0 "unlabeled" is ignored


def test_cityscapes_errors(tmp_path: Path) -> None:
    ids = np.full((H, W), 7)
    ids[5, 5] = 40
    _city(tmp_path, "val", "lindau", "000000_000019", ids)
    with pytest.raises(InputError, match=r"labelIds\.png: label value 40 is not a valid cityscapes label id"):
        build_dataset(tmp_path, "val")[0]
    _image(tmp_path / "leftImg8bit" / "val" / "lindau" / "lindau_000001_000019_leftImg8bit.png", 1)
    with pytest.raises(
        InputError, match=r"lindau_000001_000019_leftImg8bit\.png has no mask .*gtFine_labelIds"
    ):
        build_dataset(tmp_path, "val")
    with pytest.raises(InputError, match=r"leftImg8bit/train does not exist"):
        build_dataset(tmp_path, "train")


def test_classes_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("a 1 2 300\n")
    with pytest.raises(InputError, match=r"classes.txt line 1: colour values must be in 0-255"):
        read_classes_file(path)
    path.write_text("a\nb\na\n")
    with pytest.raises(InputError, match="class name 'a' appears more than once"):
        read_classes_file(path)
    path.write_text("# nothing\n\n")
    with pytest.raises(InputError, match="lists no classes"):
        read_classes_file(path)


def test_label_scan_finds_a_bad_value_before_training(tmp_path: Path, monkeypatch) -> None:
    from edgeseg.config import Recipe
    from edgeseg.data.datasets import FileSegDataset
    from edgeseg.train import fit

    stems = [f"s{i:02d}" for i in range(12)]
    _generic(tmp_path / "data", stems, "train")
    _generic(tmp_path / "data", ["v0", "v1"], "val")
    build_dataset(tmp_path / "data", "train").check_labels()  # all valid: no error
    _mask(tmp_path / "data" / "masks" / "train" / "s11.png", np.full((H, W), 9))
    with pytest.raises(InputError, match=r"s11\.png: label value 9 is >= num_classes \(4\)"):
        build_dataset(tmp_path / "data", "train").check_labels()
    recipe = Recipe.from_dict({
        "model": {"name": "lraspp_dsnet", "kwargs": {"width_mult": 0.25}},
        "data": {"root": str(tmp_path / "data"), "crop_size": 12, "batch_size": 2},
        "train": {"epochs": 1, "device": "cpu"},
    })  # fmt: skip
    samples_read: list[int] = []
    read_sample = FileSegDataset.__getitem__
    monkeypatch.setattr(
        FileSegDataset, "__getitem__", lambda ds, i: samples_read.append(i) or read_sample(ds, i)
    )
    with pytest.raises(InputError, match=r"s11\.png: label value 9"):
        fit(recipe, tmp_path / "run", progress=False, log=lambda _msg: None)
    assert samples_read == []  # found by the scan, before the loader read a single sample
