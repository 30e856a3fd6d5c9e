"""Helpers shared by the `edgeseg serve` tests: images as bytes, and a server subprocess on a free port."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from conftest import write_tiny_onnx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PALETTE = [[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200]]


def tiny_model(path: Path) -> Path:
    """The suite's tiny torch-free model (a 1×1 convolution) with four classes w, x, y, z and ``PALETTE``."""
    return write_tiny_onnx(path, ["w", "x", "y", "z"], PALETTE)


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(img: np.ndarray | Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    pil = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(model: Path, *args: str, startup_s: float = 60.0):
    """`edgeseg serve MODEL` on 127.0.0.1 and a free port; yields (base URL, Popen); always stopped."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "edgeseg", "serve", str(model), "--port", str(port), "--provider", "cpu"]
    proc = subprocess.Popen(
        [*cmd, "--threads", "1", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {proc.stdout.read().decode()}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not answer on {base} within {startup_s} s") from None
                time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
