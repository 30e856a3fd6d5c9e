"""Bounded load on `edgeseg serve` over loopback: throughput, latency, errors by kind, batch sizes.

Starts `python -m edgeseg serve MODEL` on 127.0.0.1 (a free port) for each phase, drives it with N client
threads for T seconds (each with a keep-alive connection; a share of requests is malformed on purpose), then
stops it. Every good response is checked against `Segmenter.predict` of the same image run directly in this
process, which also gives the direct-predict baseline the service is compared with:

1. one client, no malformed requests: p50 against direct predict plus what the service adds by design
   (decoding the PNG upload, encoding the PNG mask, and the transfer: an HTTP round trip that carries the
   same uploads and a mask-sized reply, to a bare ASGI app on the same uvicorn in its own process);
2. N clients with ``--max-batch 1`` and 3. N clients with ``--max-batch B``: the batching gain.

    OMP_NUM_THREADS=1 python benchmarks/serve_load.py student.onnx --clients 16 --seconds 60 --malformed 0.1

Prints markdown (machine, command, one table per phase, the verdicts); nothing is written.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import re
import shlex
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgeseg.bench.render import environment  # noqa: E402
from edgeseg.runtime import Segmenter, decode_rgb, mask_image  # noqa: E402
from edgeseg.serve.settings import ServeSettings  # noqa: E402
from edgeseg.sizes import parse_hw  # noqa: E402

DIRECT_BLOCK = 25  # one-client phase: requests, then direct runs, alternating in blocks of this many
MALFORMED_KINDS = ("not_an_image", "truncated", "wrong_content_type", "too_many_pixels")
EXPECTED_STATUS = {"not_an_image": 400, "truncated": 400, "wrong_content_type": 415, "too_many_pixels": 413}


def _png(img: np.ndarray | Image.Image) -> bytes:
    buf = io.BytesIO()
    (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_header(width: int, height: int) -> bytes:
    """A PNG header claiming width×height pixels with no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return head + struct.pack(">I", 64) + b"IDAT" + b"\0" * 64


def scenes(sizes: list[tuple[int, int]], count: int) -> list[np.ndarray]:
    """Synthetic scenes like the training data (the benchmark process may import torch; the server never)."""
    from edgeseg.data.synthetic import generate_scene

    rng = np.random.default_rng(0)
    return [generate_scene(rng, *sizes[i % len(sizes)])[0] for i in range(count)]


@dataclass
class Tally:
    """What the clients saw in one phase."""

    latencies_ms: list[float] = field(default_factory=list)
    good: int = 0
    wrong: int = 0
    lost: int = 0
    by_kind: Counter = field(default_factory=Counter)  # (kind, status) → count
    batch_requests: Counter = field(default_factory=Counter)  # batch size → requests served in such batches
    direct: list[tuple[float, float, float, float]] = field(default_factory=list)  # interleaved direct runs
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client(port, uploads, references, malformed, stop, seed, tally: Tally, direct: Direct | None) -> None:
    """One client thread; with ``direct``, every ``DIRECT_BLOCK`` good requests are followed by as many runs
    of the same work done directly, so both are timed under the same machine load, each running warm as in
    continuous use (timing them one by one in turn leaves each side's threads and caches cold)."""
    rng = np.random.default_rng(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    bad = {
        "not_an_image": (b"this is not an image" * 50, "image/png"),
        "truncated": (uploads[0][: len(uploads[0]) // 3], "image/png"),
        "wrong_content_type": (b"name=value", "application/x-www-form-urlencoded"),
        "too_many_pixels": (_bomb_header(20000, 20000), "image/png"),
    }
    while time.monotonic() < stop:
        if rng.random() < malformed:
            kind = MALFORMED_KINDS[int(rng.integers(len(MALFORMED_KINDS)))]
            body, ctype = bad[kind]
            index = None
        else:
            kind, index = "good", int(rng.integers(len(uploads)))
            body, ctype = uploads[index], "image/png"
        start = time.perf_counter()
        try:
            conn.request("POST", "/v1/segment", body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as err:
            with tally.lock:
                tally.lost += 1
                tally.by_kind[(kind, type(err).__name__)] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        elapsed = (time.perf_counter() - start) * 1000
        correct = None
        if index is not None and resp.status == 200:
            mask = np.asarray(Image.open(io.BytesIO(data)))
            correct = mask.shape == references[index].shape and bool(np.array_equal(mask, references[index]))
        with tally.lock:
            tally.by_kind[(kind, resp.status)] += 1
            if index is not None:
                if correct:
                    tally.good += 1
                    tally.latencies_ms.append(elapsed)
                    if direct is not None and len(tally.latencies_ms) % DIRECT_BLOCK == 0:
                        tally.direct += [direct.measure(index + k) for k in range(DIRECT_BLOCK)]
                    tally.batch_requests[int(resp.getheader("X-Batch-Size", "0"))] += 1
                else:
                    tally.wrong += 1
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()


SINK = """
import sys, uvicorn
reply = bytes(int(sys.argv[2]))
async def app(scope, receive, send):
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/png")]})
    await send({"type": "http.response.body", "body": reply})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            lifespan="off")
"""


def transfer_ms(uploads: list[bytes], reply_bytes: int, repeats: int = 400) -> float:
    """p50 ms of POSTing the uploads to a bare ASGI app on uvicorn (own process) that reads the body and
    replies with ``reply_bytes`` bytes: the HTTP transfer the service cannot avoid, without its work."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SINK, str(port), str(reply_bytes)])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.connect()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the transfer sink did not start") from None
                time.sleep(0.1)
        times = []
        for i in range(repeats):
            start = time.perf_counter()
            conn.request("POST", "/", body=uploads[i % len(uploads)], headers={"Content-Type": "image/png"})
            conn.getresponse().read()
            times.append((time.perf_counter() - start) * 1000)
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return float(np.median(times[repeats // 10 :]))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(model: Path, port: int, args: argparse.Namespace, max_batch: int) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "edgeseg", "serve", str(model), "--port", str(port), "--provider", "cpu",
        "--max-batch", str(max_batch), "--max-wait-ms", str(args.max_wait_ms),
        "--max-queue", str(args.max_queue),
    ]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: {shlex.join(cmd)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("server did not start within 120 s") from None
            time.sleep(0.2)


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        found = re.search(rf"^{re.escape(name)} (\S+)$", r.read().decode(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _healthz_ms(port: int, repeats: int = 200) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return float(np.median(times))


def run_phase(model, args, uploads, references, clients, seconds, malformed, max_batch, direct=None) -> dict:
    port = _free_port()
    proc = _start_server(model, port, args, max_batch)
    try:
        for i in range(min(4, len(uploads))):  # warm the sessions up before timing
            urllib.request.urlopen(
                urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/segment",
                    data=uploads[i],
                    headers={"Content-Type": "image/png"},
                ),
                timeout=60,
            ).read()
        http_ms = _healthz_ms(port)
        transfer = transfer_ms(uploads, direct.reply_bytes) if direct is not None else float("nan")
        tally = Tally()
        stop = time.monotonic() + seconds
        threads = [
            threading.Thread(
                target=_client, args=(port, uploads, references, malformed, stop, 1000 + i, tally, direct)
            )
            for i in range(clients)
        ]
        start, cpu_before = time.monotonic(), _cpu_ms(proc.pid)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        server_cpu = _cpu_ms(proc.pid) - cpu_before
        alive = proc.poll() is None and _healthz_ms(port, 1) > 0
        five_xx = int(_metric(port, 'edgeseg_requests_total{endpoint="/v1/segment",status="500"}'))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    lat = np.asarray(tally.latencies_ms) if tally.latencies_ms else np.asarray([np.nan])
    return {
        "clients": clients,
        "seconds": wall,
        "malformed": malformed,
        "max_batch": max_batch,
        "tally": tally,
        "throughput": tally.good / wall,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "http_ms": http_ms,
        "transfer_ms": transfer,
        "reply_bytes": direct.reply_bytes if direct is not None else 0,
        "alive": alive,
        "server_5xx": five_xx,
        "server_cpu_per_request": server_cpu / max(sum(tally.by_kind.values()), 1),
    }


class Direct:
    """`Segmenter.predict` in this process (array in), and the PNG decode/encode that the service adds."""

    def __init__(self, model: Path, threads: int, images: list[np.ndarray], uploads: list[bytes]) -> None:
        self.seg = Segmenter(model, provider="cpu", threads=threads or None)
        self.images, self.uploads = images, uploads
        for img in images[:4]:
            self.seg.predict(img)
        masks = [self._mask_png(self.seg.predict(img)) for img in images]
        self.reply_bytes = int(np.median([len(m) for m in masks]))  # what the service sends back

    def _mask_png(self, labels: np.ndarray) -> bytes:
        buf = io.BytesIO()
        mask_image(labels, self.seg.palette).save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    def measure(self, i: int) -> tuple[float, float, float, float]:
        """Milliseconds to decode upload ``i``, predict its image, encode the mask; and their CPU ms."""
        img, data = self.images[i % len(self.images)], self.uploads[i % len(self.uploads)]
        cpu = time.process_time()  # all threads, ONNX Runtime's included, as for the server
        t0 = time.perf_counter()
        decode_rgb(data)
        t1 = time.perf_counter()
        labels = self.seg.predict(img)
        t2 = time.perf_counter()
        self._mask_png(labels)
        t3 = time.perf_counter()
        return (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000, (time.process_time() - cpu) * 1000


def model_batch_gain(direct: Direct, batch: int, seconds: float) -> dict:
    """Images/s of `predict_batch` on ``batch`` same-size images against ``predict`` one by one."""
    first = direct.images[0].shape
    same = [im for im in direct.images if im.shape == first]
    group = (same * batch)[:batch]
    one, many = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or not one:
        t0 = time.perf_counter()
        for im in group:
            direct.seg.predict(im)
        t1 = time.perf_counter()
        direct.seg.predict_batch(group)
        t2 = time.perf_counter()
        one.append(t1 - t0)
        many.append(t2 - t1)
    single_ips, batch_ips = batch / float(np.median(one)), batch / float(np.median(many))
    return {"batch": batch, "single_ips": single_ips, "batch_ips": batch_ips, "gain": batch_ips / single_ips}


def medians(rows: list[tuple[float, float, float, float]]) -> dict:
    decode, predict, encode, _ = np.median(np.asarray(rows), axis=0)
    cpu = float(np.mean(np.asarray(rows)[:, 3]))
    return {
        "decode_p50": decode,
        "predict_p50": predict,
        "encode_p50": encode,
        "cpu_mean": cpu,
        "runs": len(rows),
    }


def _cpu_ms(pid: int) -> float:
    """User + system CPU milliseconds a process has used (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def direct_baseline(direct: Direct, seconds: float) -> dict:
    rows = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(rows) < len(direct.images):
        rows.append(direct.measure(len(rows)))
    return medians(rows)


def _histogram(batch_requests: Counter) -> str:
    batches = {size: n / size for size, n in sorted(batch_requests.items()) if size > 0}
    total = sum(batches.values()) or 1
    return ", ".join(f"{size}: {count:.0f} ({100 * count / total:.0f} %)" for size, count in batches.items())


def _errors(tally: Tally) -> str:
    rows = sorted((k, s, n) for (k, s), n in tally.by_kind.items() if k != "good" or s != 200)
    return ", ".join(f"{k} → {s}: {n}" for k, s, n in rows) or "none"


def report(args, env, direct, phases) -> str:
    lines = [
        "## edgeseg serve under load",
        "",
        f"- machine: {env['description']}",
        f"- {env['onnxruntime']['package']} package, CPU provider; intra-op threads per session: "
        f"{args.threads or 'ONNX Runtime default'}; Python {env['python']}",
        f"- model: {args.model} ; images: {args.sizes} ({args.images} synthetic scenes, PNG uploads)",
        f"- server settings: --max-wait-ms {args.max_wait_ms}, --max-queue {args.max_queue}, 1 worker",
        f"- command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        "- clients and server share this machine's CPUs (loopback)",
        "",
        f"Direct `Segmenter.predict` in the benchmark process ({direct['runs']} runs): p50 "
        f"{direct['predict_p50']:.2f} ms per image; PNG decode of the upload {direct['decode_p50']:.2f} ms, "
        f"PNG encode of the mask {direct['encode_p50']:.2f} ms.",
        "",
        "| phase | clients | malformed | --max-batch | s | good responses/s | ratio to direct predict "
        "| p50 ms | p99 ms | good | wrong | lost | server 5xx | alive "
        "| errors by kind (kind → status: count) | batch sizes (batches: count, share) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    direct_ips = 1000.0 / direct["predict_p50"]
    for name, ph in phases:
        t = ph["tally"]
        lines.append(
            f"| {name} | {ph['clients']} | {100 * ph['malformed']:.0f} % | {ph['max_batch']} | "
            f"{ph['seconds']:.0f} | {ph['throughput']:.1f} | {ph['throughput'] / direct_ips:.2f} | "
            f"{ph['p50']:.2f} | {ph['p99']:.2f} | {t.good} | {t.wrong} | {t.lost} | {ph['server_5xx']} | "
            f"{'yes' if ph['alive'] else 'NO'} | {_errors(t)} | {_histogram(t.batch_requests)} |"
        )
    single = dict(phases)["one client"]
    # The one-client phase alternates blocks of requests with the same work done directly, so that both
    # see the same load on a shared machine.
    near = medians(single["tally"].direct)
    work = near["predict_p50"] + near["decode_p50"] + near["encode_p50"]
    budget = work + single["transfer_ms"]
    budget_get = work + single["http_ms"]
    unbatched, batched = dict(phases)["batch 1"], dict(phases)[f"batch {args.max_batch}"]
    gain = batched["throughput"] / unbatched["throughput"] if unbatched["throughput"] else float("nan")
    bad = sum(ph["tally"].wrong + ph["tally"].lost + ph["server_5xx"] for _, ph in phases)
    misrouted = sum(
        n
        for _, ph in phases
        for (k, s), n in ph["tally"].by_kind.items()
        if k in EXPECTED_STATUS and s != EXPECTED_STATUS[k]
    )
    mb = direct["model_batch"]
    verdict = "met" if single["p50"] <= 1.25 * budget else "NOT met"
    lines += [
        "",
        f"- one client: p50 {single['p50']:.2f} ms against, measured in alternating blocks of {DIRECT_BLOCK} "
        f"with it, direct predict "
        f"{near['predict_p50']:.2f} + PNG decode {near['decode_p50']:.2f} + PNG encode "
        f"{near['encode_p50']:.2f} + transfer {single['transfer_ms']:.2f} (the same uploads POSTed to a bare "
        f"ASGI app on uvicorn that replies with {single['reply_bytes']} bytes) = {budget:.2f} ms: "
        f"{single['p50'] / budget:.2f}x (target <= 1.25x: {verdict}); with an empty GET /healthz round trip "
        f"({single['http_ms']:.2f} ms) as the transfer instead: {single['p50'] / budget_get:.2f}x; "
        f"{single['p50'] / near['predict_p50']:.2f}x direct predict alone. CPU time, free of the wait for a "
        f"core: the server spent {single['server_cpu_per_request']:.2f} ms per request (all its threads), "
        f"the same work done directly {near['cpu_mean']:.2f} ms",
        f"- the model alone, in this process: `predict_batch` of {mb['batch']} same-size images runs "
        f"{mb['batch_ips']:.1f} images/s against {mb['single_ips']:.1f} for `predict` one by one: "
        f"{mb['gain']:.2f}x (the most batching can give here)",
        f"- batching at {args.clients} clients: --max-batch {args.max_batch} serves "
        f"{batched['throughput']:.1f} good responses/s against {unbatched['throughput']:.1f} with "
        f"--max-batch 1: {gain:.2f}x",
        f"- wrong or lost good responses, and server 5xx, over all phases: {bad}; malformed requests "
        f"answered with another status than expected ({EXPECTED_STATUS}): {misrouted}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0, help="Length of each multi-client phase.")
    parser.add_argument("--single-seconds", type=float, default=15.0, help="Length of the one-client phase.")
    parser.add_argument("--direct-seconds", type=float, default=10.0)
    parser.add_argument("--malformed", type=float, default=0.1, help="Share of malformed requests.")
    parser.add_argument("--max-batch", type=int, default=ServeSettings.max_batch)
    parser.add_argument("--max-wait-ms", type=float, default=ServeSettings.max_wait_ms)
    parser.add_argument("--max-queue", type=int, default=ServeSettings.max_queue)
    parser.add_argument("--threads", type=int, default=0, help="Intra-op threads (0: ONNX Runtime default).")
    parser.add_argument("--sizes", default="256x256,192x320", help="Image sizes HxW, comma-separated.")
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"model not found: {args.model}")
    if not 0 <= args.malformed < 1:
        raise SystemExit(f"--malformed must be within [0, 1), got {args.malformed}")
    sizes = [parse_hw(s, "--sizes") for s in args.sizes.split(",")]
    images = scenes(sizes, args.images)
    uploads = [_png(img) for img in images]
    direct_runner = Direct(args.model, args.threads, images, uploads)
    references = [direct_runner.seg.predict(img) for img in images]
    direct = direct_baseline(direct_runner, args.direct_seconds)
    direct["model_batch"] = model_batch_gain(direct_runner, args.max_batch, args.direct_seconds)
    phases = [
        (
            "one client",
            run_phase(
                args.model,
                args,
                uploads,
                references,
                1,
                args.single_seconds,
                0.0,
                args.max_batch,
                direct_runner,
            ),
        ),
        (
            "batch 1",
            run_phase(args.model, args, uploads, references, args.clients, args.seconds, args.malformed, 1),
        ),
        (
            f"batch {args.max_batch}",
            run_phase(
                args.model,
                args,
                uploads,
                references,
                args.clients,
                args.seconds,
                args.malformed,
                args.max_batch,
            ),
        ),
    ]
    print(report(args, environment(args.threads or None), direct, phases))


if __name__ == "__main__":
    main()
