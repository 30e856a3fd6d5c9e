"""The runtime's Segmenter against the PyTorch model it was exported from, on sizes that stress padding."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from edgeseg.errors import EdgesegError, InputError
from edgeseg.export import to_onnx
from edgeseg.models import create
from edgeseg.runtime import ModelMetadata, ProviderUnavailable, Segmenter, ort_build_info
from edgeseg.runtime.binding import BoundRunner
from edgeseg.runtime.providers import ORT_DISTRIBUTIONS

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SIZES = [(67, 45), (33, 130), (64, 64)]
NUM_CLASSES = 5


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def normalized(img: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def torch_scores(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model(x)[0].numpy()


def assert_same_labels(mask: np.ndarray, scores: np.ndarray) -> None:
    """Labels equal the scores' argmax wherever the top two classes are not within float noise."""
    top2 = np.sort(scores, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-4
    expected = scores.argmax(0)
    assert mask.shape == expected.shape
    assert (mask[clear] == expected[clear]).all()
    assert (mask == expected).mean() > 0.999


def export_plain(module: nn.Module, path, meta: ModelMetadata, static: tuple[int, int] | None = None) -> None:
    """A bare ``torch.onnx.export`` plus edgeseg metadata, for models ``to_onnx`` refuses or cheap fixtures.

    Height and width are dynamic unless ``static`` fixes them (then only the graph tells the size).
    """
    axes = {0: "n"} if static else {0: "n", 2: "h", 3: "w"}
    out_axes = {0: "n"} if static else {0: "n", 1: "h", 2: "w"} if meta.output == "argmax" else axes
    example = torch.randn(1, 3, *(static or (32, 32)))
    torch.onnx.export(
        module.eval(),
        example,
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": axes, "output": out_axes},
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(path))
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


class StridedNoPad(nn.Module):
    """Downsamples by 8 and upsamples back without padding: only sizes that are multiples of 8 fit."""

    stride = 8

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, NUM_CLASSES, 3, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.down(x), scale_factor=8.0, mode="bilinear", align_corners=False)


class Pointwise(nn.Module):
    """1×1 convolutions only: no spatial context, so tiles must reproduce the whole-image result."""

    def __init__(self, output: str = "logits") -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, NUM_CLASSES, 1))
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y.argmax(1) if self.output == "argmax" else y.softmax(1) if self.output == "softmax" else y


@pytest.fixture(scope="module")
def student() -> nn.Module:
    torch.manual_seed(0)
    return create("lraspp_dsnet", num_classes=NUM_CLASSES, width_mult=0.25, inter_channels=16).eval()


@pytest.fixture(scope="module")
def models(student, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("runtime_models")
    palette = [[i * 40, 0, 255 - i * 40] for i in range(NUM_CLASSES)]
    meta = {"classes": [f"c{i}" for i in range(NUM_CLASSES)], "palette": palette}
    names = ("logits", "argmax_graph", "coarse", "static", "nopad", "pw", "pw_lab", "pw_soft")
    paths = {name: folder / f"{name}.onnx" for name in names}
    fast = {"validate": False, "simplify": False, "metadata": meta}
    to_onnx(student, paths["logits"], **fast)
    to_onnx(student, paths["coarse"], coarse=True, **fast)
    to_onnx(student, paths["argmax_graph"], output="argmax", preprocess=True, **fast)
    torch.manual_seed(1)
    nopad = StridedNoPad()
    export_plain(nopad, paths["nopad"], ModelMetadata(stride=8, pads_internally=False))
    pointwise = Pointwise()
    export_plain(pointwise, paths["pw"], ModelMetadata(stride=1, pads_internally=False))
    for key, kind in (("pw_lab", "argmax"), ("pw_soft", "softmax")):
        variant = Pointwise(kind)
        variant.net.load_state_dict(pointwise.net.state_dict())
        export_plain(variant, paths[key], ModelMetadata(stride=1, pads_internally=False, output=kind))
    export_plain(pointwise, paths["static"], ModelMetadata(), static=(64, 96))
    return {"paths": paths, "nopad": nopad, "pointwise": pointwise, "meta": meta}


def test_predict_matches_torch_on_odd_and_non_square_images(student, models):
    seg = Segmenter(models["paths"]["logits"], provider="cpu")
    assert seg.classes == models["meta"]["classes"] and seg.palette[:NUM_CLASSES] == models["meta"]["palette"]
    for height, width in SIZES:
        img = rgb(height, width, seed=height)
        ref = torch_scores(student, normalized(img))
        mask = seg.predict(img)
        assert mask.dtype == np.uint8
        assert_same_labels(mask, ref)
        np.testing.assert_allclose(seg.logits(img), ref, atol=1e-4)


def test_argmax_and_in_graph_preprocessing_work_the_same_from_outside(models):
    """Compared with the logits model, which the test above holds to PyTorch."""
    plain = Segmenter(models["paths"]["logits"], provider="cpu")
    packed = Segmenter(models["paths"]["argmax_graph"], provider="cpu")
    assert packed.metadata.preprocess == "graph" and packed.metadata.output == "argmax"
    images = [rgb(h, w, seed=h + w) for h, w in SIZES] + [rgb(67, 45, seed=99)]
    for img in images:
        assert_same_labels(packed.predict(img), plain.logits(img))
    batched = packed.predict_batch(images)
    assert [m.shape for m in batched] == [im.shape[:2] for im in images]
    for img, mask in zip(images, batched, strict=True):
        np.testing.assert_array_equal(mask, packed.predict(img))
        np.testing.assert_array_equal(plain.predict(img), mask)
    with pytest.raises(EdgesegError, match="argmax"):
        packed.logits(images[0])


def test_coarse_export_labels_full_size_images_like_pytorch(student, models):
    """The graph stops at stride 8; the runtime's labels and scores are those of the full model."""
    seg = Segmenter(models["paths"]["coarse"], provider="cpu")
    assert seg.upsample == 8 and "coarse" in seg.describe()
    images = [rgb(h, w, seed=h * w) for h, w in [*SIZES, (131, 97)]]
    stride = seg.metadata.stride
    for img in images:
        padded = [-(-d // stride) * stride for d in img.shape[:2]]
        assert seg.run(seg.prepare([img])).shape[-2:] == (padded[0] // 8, padded[1] // 8)
        ref = torch_scores(student, normalized(img))
        assert_same_labels(seg.predict(img), ref)
        np.testing.assert_allclose(seg.logits(img), ref, atol=1e-4)
    for img, mask in zip(images, seg.predict_batch(images + images[:1]), strict=False):
        np.testing.assert_array_equal(mask, seg.predict(img))
    tiled = Segmenter(models["paths"]["coarse"], provider="cpu", tile_size=64)
    big = rgb(150, 97, seed=5)
    assert tiled.predict(big).shape == (150, 97)
    np.testing.assert_allclose(tiled.logits(big)[:, :40, :40], seg.logits(big)[:, :40, :40], atol=0.5)


def test_coarse_static_export_matches_the_full_static_export(student, tmp_path):
    full, coarse = tmp_path / "full.onnx", tmp_path / "coarse.onnx"
    for path, is_coarse in ((full, False), (coarse, True)):
        to_onnx(student, path, static_size=(64, 96), preprocess=True, coarse=is_coarse, validate=False)
    dims = onnx.load(str(coarse)).graph.output[0].type.tensor_type.shape.dim[2:]
    assert [d.dim_value for d in dims] == [8, 12]
    plain, fast = Segmenter(full, provider="cpu"), Segmenter(coarse, provider="cpu")
    exact, resized = rgb(64, 96, seed=3), rgb(67, 45)
    assert_same_labels(fast.predict(exact), plain.logits(exact))
    assert (fast.predict(resized) == plain.predict(resized)).mean() > 0.999
    for img in (exact, resized):
        np.testing.assert_allclose(fast.logits(img), plain.logits(img), atol=1e-5)


def test_path_pil_and_array_inputs_agree(models, tmp_path):
    seg = Segmenter(models["paths"]["logits"], provider="cpu")
    img = rgb(41, 57)
    Image.fromarray(img).save(tmp_path / "img.png")
    expected = seg.predict(img)
    np.testing.assert_array_equal(seg.predict(tmp_path / "img.png"), expected)
    np.testing.assert_array_equal(seg.predict(str(tmp_path / "img.png")), expected)
    np.testing.assert_array_equal(seg.predict(Image.fromarray(img).convert("RGBA")), expected)


def test_static_model_is_fed_its_export_size_and_resized_back(models):
    seg = Segmenter(models["paths"]["static"], provider="cpu")
    assert seg.metadata.static_size == (64, 96)  # read from the graph: the metadata leaves it empty
    img = rgb(67, 45)
    small = np.asarray(Image.fromarray(img).resize((96, 64), Image.BILINEAR)).copy()
    scores = torch.from_numpy(torch_scores(models["pointwise"], normalized(small)))
    labels = scores.argmax(0)[None, None].float()
    expected = F.interpolate(labels, size=(67, 45), mode="nearest-exact")[0, 0].numpy()
    np.testing.assert_array_equal(seg.predict(img), expected)
    upsampled = F.interpolate(scores[None], size=(67, 45), mode="bilinear", align_corners=False)[0]
    np.testing.assert_allclose(seg.logits(img), upsampled.numpy(), atol=1e-5)


def test_model_without_internal_padding_is_padded_to_its_stride(models):
    path = models["paths"]["nopad"]
    bare = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    img = rgb(67, 45)
    x = normalized(img)
    assert bare.run(None, {"input": x.numpy()})[0].shape[-2:] != (67, 45)  # the model alone cannot do it
    reference = torch_scores(models["nopad"], F.pad(x, (0, 48 - 45, 0, 72 - 67)))[:, :67, :45]
    seg = Segmenter(path, provider="cpu")
    assert_same_labels(seg.predict(img), reference)
    np.testing.assert_allclose(seg.logits(img), reference, atol=1e-5)


def test_tiles_reproduce_whole_image_inference_without_spatial_context(models):
    img = rgb(150, 97)
    for key in ("pw", "pw_lab"):
        whole = Segmenter(models["paths"][key], provider="cpu")
        tiled = Segmenter(models["paths"][key], provider="cpu", tile_size=48, tile_overlap=0.25)
        shapes: list[tuple[int, ...]] = []
        runner = tiled.runner
        tiled.runner = lambda t, runner=runner, shapes=shapes: shapes.append(t.shape) or runner(t)
        np.testing.assert_array_equal(tiled.predict(img), whole.predict(img))
        assert len(shapes) > 6 and all(s[-2:] == (48, 48) for s in shapes)
        if key == "pw":
            np.testing.assert_allclose(tiled.logits(img), whole.logits(img), atol=1e-5)
        small = rgb(40, 30)
        np.testing.assert_array_equal(tiled.predict(small), whole.predict(small))


def test_softmax_model_gives_probabilities_and_the_same_labels(models):
    img = rgb(37, 51)
    logits = Segmenter(models["paths"]["pw"], provider="cpu")
    probs = Segmenter(models["paths"]["pw_soft"], provider="cpu")
    scores = probs.logits(img)
    np.testing.assert_allclose(scores.sum(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(scores, torch.from_numpy(logits.logits(img)).softmax(0).numpy(), atol=1e-6)
    assert_same_labels(probs.predict(img), logits.logits(img))


def test_cpu_io_binding_gives_the_same_results_without_aliasing(models):
    plain = Segmenter(models["paths"]["logits"], provider="cpu")
    bound = Segmenter(models["paths"]["logits"], provider="cpu", io_binding=True)
    assert isinstance(bound.runner, BoundRunner) and bound.io_binding
    first, other, odd = rgb(64, 64, 1), rgb(64, 64, 2), rgb(67, 45, 3)
    scores = bound.logits(first)
    kept = scores.copy()
    for img in (other, odd, first, odd):
        np.testing.assert_array_equal(bound.predict(img), plain.predict(img))
        np.testing.assert_allclose(bound.logits(img), plain.logits(img), atol=1e-6)
    np.testing.assert_array_equal(scores, kept)


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is present")
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_missing_gpu_provider_raises_instead_of_falling_back(models, provider):
    with pytest.raises(ProviderUnavailable, match=provider):
        Segmenter(models["paths"]["logits"], provider=provider)


def test_silent_fallback_of_onnxruntime_is_detected(models, monkeypatch):
    """The build claims CUDA but the session starts on the CPU (as with broken CUDA libraries)."""
    offered = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: offered)
    with pytest.warns(UserWarning), pytest.raises(ProviderUnavailable, match="started on CPUExecution"):
        Segmenter(models["paths"]["logits"], provider="cuda")
    with pytest.warns(UserWarning):
        seg = Segmenter(models["paths"]["logits"], provider="auto")
    assert seg.provider == "cpu" and seg.providers == ["CPUExecutionProvider"]


def test_auto_says_which_provider_runs_and_build_info(models):
    seg = Segmenter(models["paths"]["logits"])
    expected = "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
    assert seg.provider == expected and seg.provider in seg.describe()
    build = ort_build_info()
    assert build.version == ort.__version__ and build.package in ORT_DISTRIBUTIONS and not build.conflicting
    assert "CPUExecutionProvider" in build.providers


def test_bad_inputs_give_clear_errors(models, tmp_path):
    with pytest.raises(InputError, match="model not found"):
        Segmenter(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(InputError, match="junk.onnx"):
        Segmenter(tmp_path / "junk.onnx")
    seg = Segmenter(models["paths"]["logits"], provider="cpu")
    with pytest.raises(InputError, match="H×W×3 uint8"):
        seg.predict(np.zeros((20, 20), np.float32))
    with pytest.raises(InputError, match="image not found"):
        seg.predict(tmp_path / "nothing.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match="broken.png"):
        seg.predict(tmp_path / "broken.png")
    with pytest.raises(InputError, match="provider"):
        Segmenter(models["paths"]["logits"], provider="gpu")


def test_missing_gpu_provider_says_how_to_switch_builds():
    from edgeseg.runtime.providers import resolve_provider

    with pytest.raises(ProviderUnavailable) as info:
        resolve_provider("cuda", ["CPUExecutionProvider"])
    message = str(info.value)
    assert "\n" not in message
    assert 'pip uninstall -y onnxruntime && pip install -e ".[gpu]"' in message
    assert "edgeseg[gpu]" in message and "uninstall that first" in message
