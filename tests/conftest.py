"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeseg.runtime import ModelMetadata


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """PyTorch on one thread for every test, module fixtures that train included: tiny models run fastest so,
    and far faster than on two threads of a busy 2-core machine (oversubscribed OpenMP threads spin-wait).
    Torch is only touched when a test module has imported it, so torch-free tests stay torch-free."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_tiny_onnx(path: Path, classes: list[str], palette: list[list[int]] | None = None) -> Path:
    """A 1×1-convolution segmentation graph (3 channels → one score per class) with edgeseg metadata, built
    with onnx alone (no torch), for tests of the torch-free runtime, the CLI and the service."""
    n = len(classes)
    weight = helper.make_tensor(
        "w", TensorProto.FLOAT, [n, 3, 1, 1], np.random.default_rng(0).standard_normal(3 * n).tolist()
    )
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", n, "h", "w"])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = ModelMetadata(classes=list(classes), stride=1, **({"palette": palette} if palette else {}))
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny_onnx() -> Callable[..., Path]:
    """`tiny_onnx(path, classes, palette=None)` writes a tiny torch-free segmentation model."""
    return write_tiny_onnx
