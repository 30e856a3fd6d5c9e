"""``edgeseg serve``: an HTTP service and web page for an exported model (needs the ``serve`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.serve.settings import ServeSettings

D = ServeSettings  # defaults live in the settings dataclass


def serve(
    model: Annotated[Path, typer.Argument(help="ONNX model written by `edgeseg export`.")],
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the service.")] = D.host,
    port: Annotated[int, typer.Option(help="TCP port.")] = D.port,
    provider: Annotated[str, typer.Option(help="auto, cpu, cuda or tensorrt.")] = D.provider,
    max_batch: Annotated[int, typer.Option(help="Most same-size images run as one batch.")] = D.max_batch,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long the oldest image waits for others of its size.")
    ] = D.max_wait_ms,
    max_queue: Annotated[int, typer.Option(help="Queued images before answering 503.")] = D.max_queue,
    max_image_pixels: Annotated[
        int, typer.Option(help="Largest width x height accepted (413 above).")
    ] = D.max_image_pixels,
    max_upload_bytes: Annotated[
        int, typer.Option(help="Largest request body accepted (413 above).")
    ] = D.max_upload_bytes,
    workers: Annotated[
        int, typer.Option(help="ONNX Runtime sessions, each runs one batch at a time.")
    ] = D.workers,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads per session.")] = None,
    access_log: Annotated[
        bool, typer.Option(help="Log one line per request (off: /metrics counts requests).")
    ] = D.access_log,
) -> None:
    """Serve a model over HTTP: POST /v1/segment, GET /v1/model, /healthz, /metrics, a page at / and /docs.

    Concurrent requests of the same image size run as one batch. Stops on Ctrl+C after finishing the
    requests in flight.
    """
    from edgeseg.errors import EdgesegError

    try:
        from edgeseg.serve import run_server
    except ImportError as err:
        hint = 'pip install "edgeseg[serve]"'
        raise EdgesegError(f"edgeseg serve needs the serve extra: {hint} ({err})") from err
    run_server(
        model,
        host=host,
        port=port,
        provider=provider,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        max_image_pixels=max_image_pixels,
        max_upload_bytes=max_upload_bytes,
        workers=workers,
        threads=threads,
        access_log=access_log,
    )


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the application."""
    app.command("serve")(serve)
