"""``edgeseg.export.to_onnx`` on small hand-made modules: variants, dynamic sizes, the gate, safe writes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import EdgesegError, GateFailed, InputError
from edgeseg.export import ParityFailed, read_metadata, to_onnx
from edgeseg.runtime.metadata import ModelMetadata

MEAN = [0.5, 0.4, 0.3]
STD = [0.2, 0.25, 0.3]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models run far faster on one thread than on two contended ones; restored afterwards."""
    yield


class PaddingNet(nn.Module):
    """Pads to its stride and crops back, like edgeseg's models; any H, W."""

    stride = 8

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, 4, 1)
        )
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        ph, pw = (h + 7) // 8 * 8 - h, (w + 7) // 8 * 8 - w
        y = self.head(self.body(F.pad(x, (0, pw, 0, ph))))
        y = F.interpolate(y, scale_factor=8.0, mode="bilinear", align_corners=False)
        return y[:, :, :h, :w]


class DictNet(PaddingNet):
    """Returns torchvision-style {"out", "aux"}."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        out = super().forward(x)
        return {"out": out, "aux": out * 2}


class FrozenScaleNet(PaddingNet):
    """Eager: logits scaled by the input's own maximum. The tracer freezes that maximum into a constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float(x.abs().max())


class FFTNet(PaddingNet):
    """Uses an op the TorchScript exporter has no ONNX symbolic for."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y + 0 * torch.fft.rfft2(y).abs().mean()


def _run(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.fixture(scope="module")
def logits_export(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "net.onnx"
    metadata = {"classes": ["a", "b", "c", "d"], "pads_internally": True, "mean": MEAN, "std": STD}
    report = to_onnx(PaddingNet(), path, metadata=metadata)
    return path, report


def test_logits_export_is_dynamic_and_matches_pytorch_at_odd_sizes(logits_export):
    path, report = logits_export
    assert report.validation.passed and report.validation.max_abs_diff < 1e-4
    assert report.simplifier in ("onnxsim", "onnxslim") and report.nodes_final < report.nodes_exported
    names = [row.name for row in report.validation.rows]
    assert names == ["onnx.checker (full)", "random 1x129x97", "random 1x96x160", "random 2x112x112"]
    model = onnx.load(path)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    net = PaddingNet().eval()
    for shape in [(1, 3, 33, 47), (2, 3, 65, 31), (1, 3, 8, 8)]:
        x = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
        expected = net(torch.from_numpy(x)).detach().numpy()
        got = _run(path, x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_metadata_round_trip(logits_export):
    path, _ = logits_export
    meta = read_metadata(path)
    assert meta.classes == ["a", "b", "c", "d"] and meta.mean == MEAN and meta.std == STD
    assert meta.palette[:2] == [[0, 0, 0], [128, 0, 0]] and len(meta.palette) == 4
    assert (meta.output, meta.preprocess, meta.input_layout, meta.input_dtype) == (
        "logits",
        "none",
        "NCHW",
        "float32",
    )
    assert meta.opset == 17 and meta.precision == "fp32" and meta.static_size is None and meta.stride == 8
    assert meta.model_name == "PaddingNet" and meta.pads_internally is True and meta.exported_at
    assert ModelMetadata.from_props(meta.to_props()) == meta
    props = {p.key for p in onnx.load(path).metadata_props}
    assert set(ModelMetadata().to_props()) <= props and not any(k.startswith("onnxsim") for k in props)


def test_unknown_metadata_key_is_refused_with_a_suggestion(tmp_path):
    with pytest.raises(InputError, match="did you mean 'classes'"):
        to_onnx(PaddingNet(), tmp_path / "m.onnx", metadata={"clases": ["a"]}, validate=False)
    assert not (tmp_path / "m.onnx").exists()


def test_coarse_export_stops_before_the_final_upsampling_and_passes_the_gate(tmp_path, logits_export):
    path = tmp_path / "coarse.onnx"
    metadata = {"pads_internally": True, "mean": MEAN, "std": STD}
    report = to_onnx(PaddingNet(), path, coarse=True, metadata=metadata)
    assert report.upsample == 8 and read_metadata(path).upsample == 8 and report.validation.passed
    assert report.validation.max_abs_diff < 1e-4 and report.to_dict()["upsample"] == 8
    model = onnx.load(path)
    assert "Resize" not in {n.op_type for n in model.graph.node}
    dims = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 4, "coarse_height", "coarse_width"]
    x = np.random.default_rng(2).standard_normal((1, 3, 33, 47), dtype=np.float32)
    full = torch.from_numpy(_run(logits_export[0], x))
    coarse = _run(path, x)
    assert coarse.shape == (1, 4, 5, 6)  # 33×47 padded to 40×48, at 1/8
    upsampled = F.interpolate(torch.from_numpy(coarse), scale_factor=8, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(upsampled[..., :33, :47].numpy(), full.numpy(), atol=1e-5)


def test_coarse_export_is_refused_where_it_cannot_apply(tmp_path):
    with pytest.raises(InputError, match="coarse export returns logits"):
        to_onnx(PaddingNet(), tmp_path / "a.onnx", coarse=True, output="argmax", validate=False)
    flat = nn.Sequential(nn.Conv2d(3, 4, 1))
    with pytest.raises(InputError, match="ends in a Conv node, not in a bilinear upsampling"):
        to_onnx(flat, tmp_path / "b.onnx", coarse=True, validate=False)

    class Nearest(PaddingNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2], x.shape[-1]
            ph, pw = (h + 7) // 8 * 8 - h, (w + 7) // 8 * 8 - w
            y = self.head(self.body(F.pad(x, (0, pw, 0, ph))))
            return F.interpolate(y, scale_factor=8.0, mode="nearest")[:, :, :h, :w]

    with pytest.raises(InputError, match="mode=nearest"):
        to_onnx(Nearest(), tmp_path / "c.onnx", coarse=True, validate=False)
    assert not any(tmp_path.iterdir())


def test_argmax_variant_gives_uint8_labels_equal_to_pytorch_argmax(tmp_path):
    path = tmp_path / "argmax.onnx"
    report = to_onnx(PaddingNet(), path, output="argmax")
    assert report.validation.passed and report.validation.max_abs_diff is None
    # a foreign module is not known to pad: validation sizes are rounded up to its stride
    assert [row.shape for row in report.validation.rows[1:]] == ["1x3x136x104", "1x3x96x160", "2x3x112x112"]
    x = np.random.default_rng(2).standard_normal((2, 3, 41, 57), dtype=np.float32)
    labels = _run(path, x)
    assert labels.dtype == np.uint8 and labels.shape == (2, 41, 57)
    expected = PaddingNet().eval()(torch.from_numpy(x)).argmax(1).numpy()
    assert np.mean(labels == expected) > 0.9999


def test_preprocess_variant_takes_raw_uint8_pixels(tmp_path):
    path = tmp_path / "pre.onnx"
    metadata = {"mean": MEAN, "std": STD}
    report = to_onnx(PaddingNet(), path, output="softmax", preprocess=True, metadata=metadata)
    assert report.validation.passed
    meta = read_metadata(path)
    assert (meta.input_layout, meta.input_dtype, meta.preprocess, meta.output) == (
        "NHWC",
        "uint8",
        "graph",
        "softmax",
    )
    image = np.random.default_rng(3).integers(0, 256, (1, 37, 51, 3), dtype=np.uint8)
    probs = _run(path, image)
    normalized = (image.astype(np.float32) / 255 - np.float32(MEAN)) / np.float32(STD)
    logits = PaddingNet().eval()(torch.from_numpy(normalized.transpose(0, 3, 1, 2).copy())).detach()
    np.testing.assert_allclose(probs, torch.softmax(logits, 1).numpy(), atol=1e-5)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_static_size_fixes_height_and_width(tmp_path):
    path = tmp_path / "static.onnx"
    report = to_onnx(PaddingNet(), path, static_size=(64, 96))
    assert report.validation.passed
    dims = [d.dim_param or d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 64, 96] and read_metadata(path).static_size == (64, 96)


def test_dict_output_needs_output_key(tmp_path):
    with pytest.raises(InputError, match="'out', 'aux'"):
        to_onnx(DictNet(), tmp_path / "d.onnx")
    report = to_onnx(DictNet(), tmp_path / "d.onnx", output_key="out")
    assert report.validation.passed and [o.name for o in onnx.load(report.path).graph.output] == ["output"]


def test_export_that_differs_from_eager_fails_the_gate_and_writes_nothing(tmp_path):
    target = tmp_path / "frozen.onnx"
    with pytest.raises(ParityFailed, match="does not match PyTorch") as info:
        to_onnx(FrozenScaleNet(), target, exporter="torchscript")
    assert isinstance(info.value, GateFailed) and info.value.exit_code == 1
    assert not info.value.result.passed and info.value.result.max_abs_diff > 1e-4
    assert "tracer warned" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_without_force(tmp_path, logits_export):
    target = tmp_path / "exists.onnx"
    target.write_bytes(b"keep me")
    with pytest.raises(InputError, match="--force"):
        to_onnx(PaddingNet(), target)
    assert target.read_bytes() == b"keep me"
    to_onnx(PaddingNet(), target, force=True, validate=False)
    assert onnx.load(target).graph.output[0].name == "output"


def test_failing_exporter_names_the_other_one(tmp_path):
    with pytest.raises(EdgesegError, match="try --exporter dynamo"):
        to_onnx(FFTNet(), tmp_path / "fft.onnx", exporter="torchscript")
    assert not (tmp_path / "fft.onnx").exists()


@pytest.mark.parametrize(
    ("opset", "exporter", "message"),
    [
        (99, "torchscript", "onnxruntime"),
        (21, "torchscript", "--exporter dynamo"),
        (9, "dynamo", "too old"),
        (17, "onnx", "unknown exporter"),
    ],
)
def test_unusable_opsets_and_exporters_are_refused(tmp_path, opset, exporter, message):
    with pytest.raises(InputError, match=message):
        to_onnx(PaddingNet(), tmp_path / "m.onnx", opset=opset, exporter=exporter)
