"""`torchrun --nproc_per_node=2 -m edgeseg train`: DDP on CPU (gloo), rank 0 writes, metrics reduced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeseg.checkpoint import load_checkpoint, model_from_checkpoint
from edgeseg.config import Recipe
from edgeseg.data import build_dataset
from edgeseg.metrics import metrics_from_confusion
from edgeseg.train.distributed import DistContext
from edgeseg.train.evaluate import confusion, evaluate_file, val_loader

RECIPE = """
model: {name: unet, kwargs: {base_channels: 8, depth: 2}}
data: {synthetic_train: 16, synthetic_val: 5, synthetic_size: 48, crop_size: 48, batch_size: 2}
train: {epochs: 1, device: cpu}
"""


@pytest.mark.slow  # two torchrun processes: ~20 s
def test_two_cpu_processes(tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(RECIPE)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "edgeseg",
        "train",
        str(recipe),
        "-o",
        str(run),
        "-q",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("best mIoU") == 1  # only rank 0 reports
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["step"] == 16 // (2 * 2)  # each rank took half of the images per epoch
    state = load_checkpoint(run / "last.pt")["train_state"]
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # both ranks' RNG streams, for resuming
    # The validation images were split between the ranks (3 + 2); the logged figures cover all 5, as a
    # single-process evaluation does (up to a few near-tied pixels: the ranks batch the images differently),
    # and differ from those of rank 0's share alone.
    single, _ = evaluate_file(run / "best.pt")
    assert lines[0]["pixel_acc"] == pytest.approx(single.pixel_acc, abs=2e-3)
    assert lines[0]["miou"] == pytest.approx(single.miou, abs=2e-3)
    ckpt = load_checkpoint(run / "best.pt")
    cfg = Recipe.from_dict({"data": ckpt["recipe"]["data"]}).data
    val = build_dataset(cfg.root, "val", cfg)
    rank0 = confusion(
        model_from_checkpoint(ckpt),
        val_loader(val, cfg, DistContext(rank=0, world_size=2)),
        num_classes=val.num_classes,
    )
    assert abs(metrics_from_confusion(rank0).pixel_acc - single.pixel_acc) > 2e-3
