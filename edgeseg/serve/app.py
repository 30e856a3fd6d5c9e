"""`create_app(model_path, **settings)`: the ASGI application of `edgeseg serve`, mountable in another app.

Endpoints: ``POST /v1/segment`` (palette PNG mask, ``?format=json`` or ``?format=overlay``),
``GET /v1/model``, ``GET /healthz``, ``GET /metrics`` (Prometheus text), ``GET /`` (a page to try
the model), ``/docs``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from edgeseg import __version__
from edgeseg.runtime import Segmenter
from edgeseg.serve import responses
from edgeseg.serve.batching import Arrival, Batcher, BatcherClosed, BatchResult, QueueFull
from edgeseg.serve.errors import ServeError
from edgeseg.serve.metrics import ServeMetrics
from edgeseg.serve.settings import ServeSettings
from edgeseg.serve.uploads import ClientGone, decode_image, upload_bytes

ENDPOINTS = ("/", "/v1/segment", "/v1/model", "/healthz", "/metrics", "/docs", "/openapi.json")
CLIENT_GONE = 499  # nginx's code for "client closed request": never reaches anyone, logged and counted

UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class _CountRequests:
    """ASGI middleware: requests by endpoint and status, and requests in flight."""

    def __init__(self, app: Any, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            endpoint = path if path in ENDPOINTS else "other"
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()


@dataclass
class _Pending:
    """A request shared by the event loop and its thread: the queued job, and whether the client left."""

    future: Future | None = None
    gone: bool = False

    def abandon(self) -> None:
        self.gone = True
        if self.future is not None:
            self.future.cancel()  # a job no worker took yet is dropped, never run


async def _unless_gone(request: Request, work: asyncio.Future, pending: _Pending) -> Any:
    """The work's result, or None once the client disconnects first (its queued image is then dropped)."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        if not work.done():
            pending.abandon()

    watcher = asyncio.get_running_loop().create_task(disconnected())
    try:
        result = await work
    finally:
        watcher.cancel()
    return None if pending.gone else result


def model_info(segmenter: Segmenter, settings: ServeSettings) -> dict[str, Any]:
    """What `/v1/model` returns: the file's metadata, the providers really in use and the service limits."""
    meta = dataclasses.asdict(segmenter.metadata)
    return {
        "file": segmenter.path.name,
        "edgeseg_version": __version__,
        "num_classes": segmenter.num_classes,
        "classes": segmenter.classes,
        "palette": segmenter.palette[: len(segmenter.classes)],
        "input": {
            "name": segmenter.io.input_name,
            "dtype": np.dtype(segmenter.io.input_dtype).name,
            "layout": meta["input_layout"],
            "preprocess": meta["preprocess"],
            "static_size": meta["static_size"],
            "stride": meta["stride"],
            "fixed_batch": segmenter.max_batch,
            "mean": meta["mean"],
            "std": meta["std"],
        },
        "output": meta["output"],
        "precision": meta["precision"],
        "provider": segmenter.provider,
        "providers": segmenter.providers,
        "metadata": meta,
        "limits": {
            "max_batch": settings.max_batch,
            "max_wait_ms": settings.max_wait_ms,
            "max_queue": settings.max_queue,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_image_pixels": settings.max_image_pixels,
            "workers": settings.workers,
        },
    }


def create_app(model_path: str | os.PathLike, **settings: Any) -> FastAPI:
    """The service for one ONNX model. ``settings`` are :class:`ServeSettings` fields (host/port unused here).

    The model is loaded and the inference threads start here, so a bad model fails now, and the app works
    mounted under another (whose lifespan does not run a mounted app's): call ``app.state.batcher.close()``
    on shutdown there to finish queued images; standalone, the app's lifespan does it.
    """
    cfg = ServeSettings.from_kwargs(**settings)
    segmenters = [
        Segmenter(model_path, provider=cfg.provider, threads=cfg.threads) for _ in range(cfg.workers)
    ]
    model = segmenters[0]
    metrics = ServeMetrics(queue_depth=lambda: batcher.depth)  # read by /metrics, after the batcher exists
    batcher = Batcher(
        segmenters,
        cfg.max_batch,
        cfg.max_wait_ms,
        cfg.max_queue,
        on_batch=metrics.observe_batch,
        track_arrivals=True,
    )
    info = model_info(model, cfg)
    page = resources.files("edgeseg.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    # One thread per request does decode → queue → wait → encode: two thread hand-offs fewer than going
    # back to the event loop between steps. Enough threads that the queue limit, not threads, refuses work.
    # A plain executor: anyio.to_thread's capacity limiter and checkpoints cost event-loop turns per request.
    requests = ThreadPoolExecutor(cfg.max_queue + cfg.workers * cfg.max_batch + 16, "edgeseg-request")
    retry = {"Retry-After": str(cfg.retry_after_s)}

    def handle(data: bytes, name: str, fmt: str, arrival: Arrival, pending: _Pending) -> tuple | None:
        image = decode_image(data, name, cfg.max_image_pixels)
        try:
            future = batcher.submit(image, arrival)
        except QueueFull as err:
            raise ServeError(503, "queue_full", f"server busy: {err}; retry later", retry) from err
        except BatcherClosed as err:
            raise ServeError(503, "shutting_down", str(err), retry) from err
        pending.future = future
        if pending.gone:
            future.cancel()
        try:
            result = future.result()
        except CancelledError:
            return None
        body, media = _render(fmt, image, result, model, cfg.overlay_alpha)
        return body, media, result, image.shape[:2]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(batcher.close, cfg.graceful_timeout_s)
        requests.shutdown(wait=False)

    app = FastAPI(
        title="edgeseg serve",
        version=__version__,
        description=f"Semantic segmentation with {model.path.name} on ONNX Runtime ({model.provider}).",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.metrics = metrics
    app.state.settings = cfg
    app.state.segmenter = model
    app.add_middleware(_CountRequests, metrics=metrics)

    @app.exception_handler(ServeError)
    async def serve_error(_: Request, err: ServeError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness: the model is loaded and the inference threads run."""
        return {"status": "ok", "model": model.path.name, "queue_depth": batcher.depth}

    @app.get("/v1/model")
    async def model_endpoint() -> dict[str, Any]:
        """The model's metadata (classes, palette, input contract), providers in use and the limits."""
        return info

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/v1/segment", openapi_extra=UPLOAD_SCHEMA, response_class=Response)
    async def segment(request: Request, format: str = "png") -> Response:
        """Segment one image (multipart file or raw image bytes).

        ``format``: ``png`` (palette PNG mask, the default), ``json`` (classes with pixel counts and colours,
        the mask as row-major RLE) or ``overlay`` (PNG of the mask blended over the image).
        """
        start = time.perf_counter()
        if format not in responses.FORMATS:
            raise ServeError(
                400, "bad_format", f"format must be one of {', '.join(responses.FORMATS)}, got {format!r}"
            )
        with batcher.arriving() as arrival:  # queued images of this size may wait for this one
            try:
                data, name = await upload_bytes(request, cfg.max_upload_bytes)
            except ClientGone:
                metrics.client_gone.inc()
                return Response(status_code=CLIENT_GONE)
            pending = _Pending()
            job = functools.partial(handle, data, name, format, arrival, pending)
            work = asyncio.get_running_loop().run_in_executor(requests, job)
            outcome = await _unless_gone(request, work, pending)
        if outcome is None:
            metrics.client_gone.inc()
            return Response(status_code=CLIENT_GONE)
        body, media, result, (height, width) = outcome
        headers = {
            "X-Inference-Ms": f"{result.inference_s * 1000:.2f}",
            "X-Batch-Size": str(result.batch_size),
            "X-Image-Size": f"{width}x{height}",
        }
        metrics.latency.labels(format=format).observe(time.perf_counter() - start)
        return Response(body, media_type=media, headers=headers)

    return app


def _render(
    fmt: str, image: np.ndarray, result: BatchResult, model: Segmenter, alpha: float
) -> tuple[bytes, str]:
    if fmt == "json":
        doc = responses.summary(result.labels, model)
        doc.update(inference_ms=round(result.inference_s * 1000, 3), batch_size=result.batch_size)
        return JSONResponse(doc).body, "application/json"
    if fmt == "overlay":
        return responses.overlay_png(image, result.labels, model, alpha), "image/png"
    return responses.mask_png(result.labels, model), "image/png"


def run_server(model_path: str | os.PathLike, **settings: Any) -> None:
    """Serve the model with uvicorn until interrupted; shutdown finishes the requests in flight."""
    import uvicorn

    cfg = ServeSettings.from_kwargs(**settings)
    app = create_app(model_path, **settings)
    uvicorn.run(
        app,
        host=cfg.host,
        port=cfg.port,
        timeout_graceful_shutdown=int(cfg.graceful_timeout_s) or None,
        log_level="info",
        access_log=cfg.access_log,
    )


__all__ = ["create_app", "model_info", "run_server"]
