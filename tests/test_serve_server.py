"""`edgeseg serve` as a real server on 127.0.0.1: no torch in it, clients that leave, graceful stop."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

from serve_support import REPO, decode_png, encode, rgb, server, tiny_model  # noqa: E402

from edgeseg.runtime import Segmenter  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve-server") / "tiny.onnx"
    tiny_model(path)
    return path


def post(base: str, data: bytes, timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(f"{base}/v1/segment", data=data, headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def raw_request(port: int, body: bytes, declared: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST /v1/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def wait_for(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to list the server's libraries")
def test_server_has_no_torch_and_survives_clients_that_leave(model):
    img = rgb(33, 47)
    expected = Segmenter(model, provider="cpu").predict(img)
    with server(model, "--max-wait-ms", "1500") as (base, proc):
        status, body = post(base, encode(img))
        assert status == 200 and np.array_equal(decode_png(body), expected)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "onnxruntime" in maps and "libtorch" not in maps and "/torch/" not in maps

        port = int(base.rsplit(":", 1)[1])
        ran_before = metric(base, "edgeseg_batch_size_count")
        # Still uploading: 1 kB of a declared 100 kB. While it arrives, queued images wait for it.
        uploading = raw_request(port, b"\0" * 1000, 100_000)
        time.sleep(0.3)
        # Gone while queued: the whole image arrives, then the client leaves during the 1.5 s batching wait.
        data = encode(rgb(20, 20))
        queued = raw_request(port, data, len(data))
        time.sleep(0.5)
        queued.close()
        time.sleep(0.3)
        uploading.close()  # gone mid-upload
        assert wait_for(lambda: metric(base, "edgeseg_client_gone_total") == 2.0)
        time.sleep(1.5)  # past the batching wait: a leaked job would have run by now
        assert metric(base, "edgeseg_batch_size_count") == ran_before  # the abandoned image never ran
        assert metric(base, "edgeseg_queue_depth") == 0.0
        assert metric(base, "edgeseg_in_flight") == 1.0  # only the /metrics request itself
        status, body = post(base, encode(img))
        assert status == 200 and np.array_equal(decode_png(body), expected)


def test_graceful_shutdown_finishes_requests_in_flight(model):
    with server(model) as (base, proc):
        data = encode(rgb(16, 16))
        sock = raw_request(int(base.rsplit(":", 1)[1]), data[:100], len(data))  # mid-upload
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(data[100:])  # the rest arrives after the signal
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        # uvicorn exits through the signal it caught, once the request is answered.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)


def test_create_app_and_a_request_import_no_torch(model):
    pytest.importorskip("httpx", reason="httpx (FastAPI's TestClient) is not installed")
    code = f"""
import sys
from fastapi.testclient import TestClient
from edgeseg.serve import create_app
with TestClient(create_app({str(model)!r}, provider="cpu", max_wait_ms=1)) as client:
    png = {{"content-type": "image/png"}}
    r = client.post("/v1/segment?format=json", content={encode(rgb(8, 8))!r}, headers=png)
    assert r.status_code == 200, r.text
import edgeseg.cli.main
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().replace("'", '"')) == []


@pytest.mark.parametrize("flag", [(), ("--access-log",)], ids=["default", "access-log"])
def test_access_log_is_opt_in(model, flag):
    with server(model, *flag) as (base, proc):
        assert post(base, encode(rgb(16, 16)))[0] == 200
        proc.terminate()
        out = proc.stdout.read().decode()
    logged = re.search(r'"POST /v1/segment HTTP/1\.1" 200', out) is not None
    assert logged == bool(flag), out
