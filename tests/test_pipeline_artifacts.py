"""The pipeline's export and INT8 steps with the runtime's fastest form (in-graph preprocessing, coarse)."""

from __future__ import annotations

import numpy as np
import torch

from edgeseg.checkpoint import make_checkpoint, save_checkpoint
from edgeseg.data import build_dataset
from edgeseg.export import read_metadata
from edgeseg.models import create
from edgeseg.pipeline.artifacts import export_model, quantize_model
from edgeseg.pipeline.config import ExportSettings, QuantizeSettings


def test_coarse_preprocess_export_and_its_int8_are_gated_against_full_size_outputs(tmp_path):
    torch.manual_seed(0)
    data = build_dataset("synthetic", "val")
    model = create("lraspp_dsnet", num_classes=data.num_classes, width_mult=0.25, inter_channels=16)
    save_checkpoint(make_checkpoint(model, classes=data.classes, palette=data.palette), tmp_path / "s.pt")
    samples = [(np.asarray(image), np.asarray(mask)) for image, mask in (data[0], data[1])]
    settings = ExportSettings(coarse=True, preprocess=True)
    exported = export_model(tmp_path / "s.pt", tmp_path / "s.onnx", samples, settings)
    assert (exported["upsample"], exported["preprocess"], exported["parity"]["passed"]) == (8, True, True)
    quant = QuantizeSettings(calib_size=4, val_size=4)
    int8 = quantize_model(tmp_path / "s.onnx", tmp_path / "s8.onnx", data, data, samples, quant)
    assert int8["passed"] and int8["parity"]["agreement"] > 0.99  # INT8 against FP32, both upsampled
    meta = read_metadata(tmp_path / "s8.onnx")
    assert (meta.upsample, meta.preprocess, meta.precision) == (8, "graph", "int8")
