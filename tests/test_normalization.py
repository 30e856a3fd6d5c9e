"""A recipe's own normalization (``data.mean``/``data.std``) flows recipe → training → checkpoint → ONNX
metadata → validation, INT8 calibration and the runtime, so every step feeds the network what training fed it.

The statistics are far from ImageNet's, so a step that fell back to ImageNet's would predict other labels:
the test measures that too, to show it would notice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeseg.checkpoint import load_checkpoint, model_from_checkpoint
from edgeseg.config import Recipe
from edgeseg.data import build_dataset
from edgeseg.errors import InputError
from edgeseg.runtime import Segmenter
from edgeseg.runtime.metadata import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.runtime.ops import normalized_batch
from edgeseg.train import fit

MEAN, STD = [0.9, 0.1, 0.5], [0.05, 0.4, 0.1]
DATA = {"synthetic_train": 16, "synthetic_val": 4, "synthetic_size": 48, "crop_size": 48, "batch_size": 4}
RECIPE = {
    "model": {"name": "unet", "kwargs": {"base_channels": 8, "depth": 2}},
    "data": DATA | {"mean": MEAN, "std": STD},
    "train": {"epochs": 1, "seed": 0, "device": "cpu"},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of a tiny U-Net with the recipe's statistics (one thread: fastest for tiny models)."""
    run = tmp_path_factory.mktemp("norm") / "run"
    fit(Recipe.from_dict(RECIPE), run, progress=False, log=lambda _m: None)
    return run / "last.pt"


def _torch_labels(checkpoint: Path, image: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    model = model_from_checkpoint(checkpoint)
    with torch.inference_mode():
        logits = model(torch.from_numpy(normalized_batch(image, mean, std)))
    return logits.argmax(1)[0].numpy()


def test_recipe_statistics_are_checked() -> None:
    with pytest.raises(InputError, match="data.std"):
        Recipe.from_dict({"data": {"std": [0.2, 0.0, 0.2]}})
    with pytest.raises(InputError, match="data.mean"):
        Recipe.from_dict({"data": {"mean": [0.5, 0.5]}})
    assert Recipe.from_dict({}).data.mean == list(IMAGENET_MEAN)


def test_own_statistics_flow_from_the_recipe_to_every_step(trained: Path, tmp_path: Path) -> None:
    from edgeseg.export import export_checkpoint, read_metadata
    from edgeseg.export.from_checkpoint import validate_checkpoint
    from edgeseg.quantize import quantize_file
    from edgeseg.train.evaluate import evaluate_file

    ckpt = load_checkpoint(trained)
    assert (ckpt["mean"], ckpt["std"]) == (MEAN, STD)
    # training evaluated with the recipe's statistics, and so does `edgeseg eval` of the checkpoint
    assert evaluate_file(trained)[0].miou == pytest.approx(ckpt["metrics"]["miou"], abs=1e-9)

    files = {"float": tmp_path / "m.onnx", "uint8": tmp_path / "pre.onnx"}
    export_checkpoint(trained, files["float"], data="synthetic")
    export_checkpoint(trained, files["uint8"], data="synthetic", preprocess=True)
    for path in files.values():
        meta = read_metadata(path)
        assert (meta.mean, meta.std) == (MEAN, STD)
        assert validate_checkpoint(path, trained, data="synthetic").passed
    int8 = tmp_path / "m.int8.onnx"
    report = quantize_file(files["float"], int8, calib="synthetic", calib_size=4, max_drop=100)
    assert read_metadata(int8).mean == MEAN and report.val_images == 4  # the model's own data settings
    assert report.miou_fp32 == pytest.approx(100 * ckpt["metrics"]["miou"], abs=1e-3)  # fed as in training

    val = build_dataset("synthetic", "val", Recipe.from_dict(RECIPE).data)
    right = wrong = same_int8 = 0
    for index in range(len(val)):
        image = val[index][0]
        expected = _torch_labels(trained, image, MEAN, STD)
        imagenet = _torch_labels(trained, image, list(IMAGENET_MEAN), list(IMAGENET_STD))
        for path in files.values():
            got = Segmenter(str(path), provider="cpu").predict(image)
            right += int((got == expected).sum())
            wrong += int((got == imagenet).sum())
        same_int8 += int((Segmenter(str(int8), provider="cpu").predict(image) == expected).sum())
    pixels = 2 * len(val) * 48 * 48
    assert right / pixels > 0.9999  # the runtime normalizes as training did, in numpy and in the graph
    assert wrong / pixels < 0.99  # ImageNet's statistics would give other labels: the check above can fail
    assert same_int8 / (pixels / 2) > 0.8  # calibrated on the recipe's statistics
