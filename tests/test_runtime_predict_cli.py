"""`edgeseg predict`: palette PNG masks and overlays, bad files reported by name, no silent overwrites."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeseg.cli.main import app, main
from edgeseg.errors import EdgesegError, InputError
from edgeseg.runtime import Segmenter, overlay

PALETTE = [[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200]]


@pytest.fixture
def workspace(tmp_path, tiny_onnx):
    tiny_onnx(tmp_path / "tiny.onnx", ["w", "x", "y", "z"], PALETTE)
    rng = np.random.default_rng(3)
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (25, 33, 3), dtype=np.uint8)).save(folder / "sub" / "b.jpg")
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n not really")
    Image.fromarray(rng.integers(0, 256, (17, 19, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    return tmp_path


def test_predict_writes_palette_masks_and_survives_a_bad_file(workspace):
    out = workspace / "out"
    args = [
        "predict",
        str(workspace / "tiny.onnx"),
        str(workspace / "images"),
        str(workspace / "c.png"),
        "-o",
        str(out),
        "--overlay",
        "--provider",
        "cpu",
    ]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, EdgesegError) and result.exit_code != 0
    assert "bad.png" in str(result.exception) and "1 of 4" in str(result.exception)
    seg = Segmenter(workspace / "tiny.onnx", provider="cpu")
    for source, mask in [("images/a.png", "a.png"), ("images/sub/b.jpg", "sub/b.png"), ("c.png", "c.png")]:
        with Image.open(out / mask) as img:
            assert img.mode == "P"
            assert img.getpalette()[: 3 * len(PALETTE)] == [v for color in PALETTE for v in color]
            labels = np.asarray(img)
        np.testing.assert_array_equal(labels, seg.predict(workspace / source))
        assert len(np.unique(labels)) > 1
        with Image.open(out / mask.replace(".png", "_overlay.png")) as over:
            assert over.mode == "RGB" and over.width >= labels.shape[1] and over.height > labels.shape[0]
            picture = np.asarray(over)
        image = np.asarray(Image.open(workspace / source).convert("RGB"))
        blended = overlay(image, labels, seg.palette, 0.5)
        np.testing.assert_array_equal(picture[: labels.shape[0], : labels.shape[1]], blended)
        band = picture[labels.shape[0] :].reshape(-1, 3)
        for index in np.unique(labels):
            assert (band == seg.palette[index]).all(axis=1).any(), f"no legend swatch for class {index}"
    assert not (out / "bad.png").exists()
    assert sorted(p.name for p in out.rglob("*.png")) == sorted(
        ["a.png", "a_overlay.png", "b.png", "b_overlay.png", "c.png", "c_overlay.png"]
    )


def test_predict_refuses_to_overwrite_without_force(workspace, monkeypatch):
    out = workspace / "out"
    args = ["predict", str(workspace / "tiny.onnx"), str(workspace / "c.png"), "-o", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    stamp = (out / "c.png").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert isinstance(again.exception, InputError) and "--force" in str(again.exception)
    assert (out / "c.png").stat().st_mtime_ns == stamp
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0
    bad = str(workspace / "images" / "bad.png")
    monkeypatch.setattr(sys, "argv", ["edgeseg", *args[:3], bad, "-o", str(out), "--force"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
