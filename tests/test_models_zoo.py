"""Every registered model: output sizes, named features, rebuilding, ONNX export parity; registry errors."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgeseg.errors import InputError
from edgeseg.models import complexity, create, list_models

NUM_CLASSES = 3
SIZES = [(97, 131), (128, 128)]
# Shrunk widths keep the suite fast; a model missing here is tested with its defaults.
SMALL: dict[str, dict[str, Any]] = {
    "fcn32s": {"backbone": "dsnet", "width_mult": 0.5, "head_channels": 32},
    "fcn16s": {"backbone": "mobilenetv2", "width_mult": 0.5, "head_channels": 32},
    "fcn8s": {"backbone": "dsnet", "width_mult": 0.5, "head_channels": 32},
    "deeplabv3": {"backbone": "resnet18", "aspp_channels": 32, "output_stride": 8},
    "deeplabv3plus": {"backbone": "dsnet", "aspp_channels": 32, "decoder_channels": 32, "separable": True},
    "deeplabv3plus_mobilenetv2": {"width_mult": 0.5, "aspp_channels": 32, "decoder_channels": 32},
    "lraspp_mobilenetv2": {"width_mult": 0.5, "inter_channels": 32},
    "unet": {"base_channels": 8},
    "unet_ds": {"width_mult": 0.25},
}
EXPECTED = {"fcn32s", "fcn16s", "fcn8s", "unet", "unet_ds", "deeplabv3", "deeplabv3plus", "lraspp_dsnet"}


@functools.cache
def small(name: str) -> torch.nn.Module:
    """The shrunk model ``name`` in eval mode, built once for all tests (which must not modify it)."""
    torch.manual_seed(0)
    return create(name, num_classes=NUM_CLASSES, **SMALL.get(name, {})).eval()


def padded(side: int, stride: int) -> int:
    return -(-side // stride) * stride


def test_registry_lists_the_zoo() -> None:
    assert EXPECTED <= set(list_models())
    assert set(SMALL) <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_logits_and_features_at_odd_and_even_sizes(name: str) -> None:
    model = small(name)
    assert isinstance(model.backbone, torch.nn.Module) and model.num_classes == NUM_CLASSES
    assert "decoder" in model.feature_channels and set(model.feature_channels) == set(model.feature_strides)
    for height, width in SIZES:
        with torch.no_grad():
            logits, features = model.forward_features(torch.randn(1, 3, height, width))
        assert logits.shape == (1, NUM_CLASSES, height, width)
        assert set(features) == set(model.feature_channels)
        for key, value in features.items():
            stride = model.feature_strides[key]
            rows, cols = padded(height, model.stride) // stride, padded(width, model.stride) // stride
            assert value.shape == (1, model.feature_channels[key], rows, cols), key


@pytest.mark.parametrize("name", list_models())
def test_model_rebuilds_from_its_name_and_kwargs(name: str) -> None:
    model = small(name)
    kwargs = json.loads(json.dumps(model.model_kwargs))
    assert kwargs["num_classes"] == NUM_CLASSES and model.model_name == name
    torch.manual_seed(1)
    rebuilt = create(model.model_name, **kwargs)
    assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == [
        (k, v.shape) for k, v in model.state_dict().items()
    ]
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), model(x))


@pytest.mark.parametrize("name", ["lraspp_dsnet", "unet_ds", "deeplabv3plus_mobilenetv2", "fcn8s"])
@pytest.mark.parametrize("size", [(32, 32), (33, 65)])
def test_smallest_inputs_work(name: str, size: tuple[int, int]) -> None:
    with torch.no_grad():
        assert small(name)(torch.randn(1, 3, *size)).shape == (1, NUM_CLASSES, *size)


def test_default_teacher_is_deeplabv3plus_resnet50_os16() -> None:
    teacher = create("deeplabv3plus", num_classes=NUM_CLASSES).eval()
    assert teacher.model_kwargs["backbone"] == "resnet50" and teacher.model_kwargs["output_stride"] == 16
    assert teacher.feature_strides["c5"] == 16 and teacher.feature_channels["c5"] == 2048
    with torch.no_grad():
        assert teacher(torch.randn(1, 3, 97, 131)).shape == (1, NUM_CLASSES, 97, 131)


def test_smallest_student_is_under_lraspp_mobilenetv3_flops() -> None:
    with torch.device("meta"):
        student = create("lraspp_dsnet")
    params, gflops = complexity(student, (512, 512))
    assert gflops < 2.1 and params < 3.2e6  # torchvision lraspp_mobilenet_v3_large: 2.1 GFLOPs, 3.2 M


def test_complexity_counts_multiply_accumulates() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    conv.train()
    params, gflops = complexity(conv, (32, 40))
    assert params == 8 * 3 * 9 + 8
    assert gflops == pytest.approx(32 * 40 * 8 * 3 * 9 * 1e-9)
    assert conv.training


def test_registry_errors_name_the_problem() -> None:
    with pytest.raises(InputError, match="did you mean unet"):
        create("unte")
    with pytest.raises(InputError, match="'widht'"):
        create("unet_ds", widht=0.5)
    with pytest.raises(InputError, match="unknown backbone 'resnet5'"):
        create("deeplabv3", backbone="resnet5")
    with pytest.raises(InputError, match="output_stride"):
        create("deeplabv3plus", output_stride=32)


def export_torchscript(model: torch.nn.Module, path: Path) -> None:
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        model,
        (torch.randn(1, 3, 64, 64),),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": axes, "output": axes},
        opset_version=17,
    )


def export_dynamo(model: torch.nn.Module, path: Path) -> None:
    dim = torch.export.Dim
    shapes = {"x": {2: dim("height", min=32, max=4096), 3: dim("width", min=32, max=4096)}}
    torch.onnx.export(
        model,
        (torch.randn(1, 3, 64, 64),),
        str(path),
        dynamo=True,
        input_names=["input"],
        output_names=["output"],
        dynamic_shapes=shapes,
    )


def assert_onnx_matches(model: torch.nn.Module, path: Path) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for height, width in SIZES:
        x = torch.randn(1, 3, height, width)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"input": x.numpy()})
        assert got.shape == expected.shape
        assert np.abs(expected).max() > 1e-3  # a degenerate all-zero output would match anything
        assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_with_dynamic_height_and_width(name: str, tmp_path: Path) -> None:
    model = small(name)
    export_torchscript(model, tmp_path / f"{name}.onnx")
    assert_onnx_matches(model, tmp_path / f"{name}.onnx")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_dynamo_exporter_gives_a_graph_for_any_size(tmp_path: Path) -> None:
    model = create("unet", num_classes=NUM_CLASSES, base_channels=8, depth=2).eval()
    export_dynamo(model, tmp_path / "unet.onnx")
    assert_onnx_matches(model, tmp_path / "unet.onnx")


def test_describe_model_names_the_arguments_that_differ_from_the_defaults() -> None:
    from edgeseg.models import describe_model

    wide = create("lraspp_dsnet", num_classes=5, width_mult=4.0)
    assert describe_model(wide.model_name, wide.model_kwargs) == "lraspp_dsnet ×4 width"
    plain = create("lraspp_dsnet", num_classes=5)
    assert describe_model(plain.model_name, plain.model_kwargs) == "lraspp_dsnet"
    small = create("unet_ds", num_classes=3, width_mult=0.25, depth=3)
    assert describe_model(small.model_name, small.model_kwargs) == "unet_ds ×0.25 width (depth=3)"
    assert describe_model("not_registered", {"width_mult": 2}) == "not_registered"


def test_unet_ds_width_goes_below_sixteen_channels_in_steps_of_eight() -> None:
    # a narrower capacity-benchmark student: x0.125 has 8 channels at full resolution, x0.25 keeps 16
    narrow = create("unet_ds", num_classes=3, width_mult=0.125, depth=2)
    assert narrow.backbone.feature_channels == {"c0": 8, "c1": 16, "c2": 32}
    assert create("unet_ds", num_classes=3, width_mult=0.25, depth=2).backbone.feature_channels["c0"] == 16
    out = narrow(torch.randn(1, 3, 36, 44))
    assert out.shape == (1, 3, 36, 44)


def test_unet_ds_width_rounds_to_eight_channels_unless_base_channels_is_given() -> None:
    assert create("unet_ds", num_classes=3, width_mult=0.1875).feature_channels["c0"] == 16  # the 0.25 model
    model = create("unet_ds", num_classes=3, width_mult=0.25, base_channels=12, depth=2)
    assert model.feature_channels == {"c0": 12, "c1": 24, "c2": 48, "decoder": 12}
    assert model(torch.zeros(1, 3, 20, 28)).shape == (1, 3, 20, 28)
    with pytest.raises((InputError, ValueError), match="base_channels must be a positive integer, got 0"):
        create("unet_ds", base_channels=0)
