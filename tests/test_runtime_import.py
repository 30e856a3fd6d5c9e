"""The runtime runs where PyTorch is absent, and says how to install ONNX Runtime when that is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKER = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is blocked for this test")
        return None

sys.meta_path.insert(0, Block())
"""


def run_blocked(blocked: set[str], body: str) -> subprocess.CompletedProcess:
    code = BLOCKER.format(blocked=blocked) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_runtime_imports_and_segments_without_torch(tmp_path, tiny_onnx):
    tiny_onnx(tmp_path / "tiny.onnx", ["a", "b", "c", "d"])
    done = run_blocked(
        {"torch"},
        f"""
        import numpy as np
        from edgeseg.runtime import Segmenter
        seg = Segmenter({str(tmp_path / "tiny.onnx")!r}, provider="cpu")
        mask = seg.predict(np.zeros((31, 45, 3), np.uint8))
        assert mask.shape == (31, 45), mask.shape
        try:
            import torch
        except ImportError:
            print("torch unavailable, runtime fine")
        assert not any(name.split(".")[0] == "torch" for name in sys.modules)
    """,
    )
    assert done.returncode == 0, done.stderr
    assert "torch unavailable, runtime fine" in done.stdout


def test_missing_onnxruntime_names_the_extras(tmp_path, tiny_onnx):
    tiny_onnx(tmp_path / "tiny.onnx", ["a", "b", "c", "d"])
    done = run_blocked(
        {"onnxruntime", "torch"},
        f"""
        from edgeseg.errors import EdgesegError
        from edgeseg.runtime import Segmenter
        try:
            Segmenter({str(tmp_path / "tiny.onnx")!r})
        except EdgesegError as err:
            print(err)
    """,
    )
    assert done.returncode == 0, done.stderr
    assert "edgeseg[cpu]" in done.stdout and "edgeseg[gpu]" in done.stdout and "never both" in done.stdout
