"""`ServeSettings`: every setting of the HTTP service with its default, declared once.

The CLI (`edgeseg serve`) and `create_app(model_path, **settings)` both take their defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from edgeseg.errors import InputError


@dataclass(frozen=True)
class ServeSettings:
    """How the service runs the model and which limits it enforces.

    ``max_batch``: most images of one size class stacked into one model run. ``max_wait_ms``: how long the
    oldest queued image waits for others of its size before its batch runs anyway. ``max_queue``: images
    waiting for a run; beyond it requests get 503 with Retry-After. ``max_upload_bytes``: request body limit
    (413). ``max_image_pixels``: width × height limit checked from the image header before decoding (413).
    ``workers``: ONNX Runtime sessions (and worker threads), each running one batch at a time; ``threads``:
    intra-op threads of each session (None: ONNX Runtime's default). ``overlay_alpha``: mask opacity in
    overlays. ``graceful_timeout_s``: how long shutdown waits for in-flight requests. ``access_log``: one log
    line per request from uvicorn (off by default: it costs about a tenth of a millisecond of the event
    loop's time per request, and ``/metrics`` counts requests by endpoint and status).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    provider: str = "auto"
    threads: int | None = None
    workers: int = 1
    max_batch: int = 8
    max_wait_ms: float = 2.0
    max_queue: int = 64
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    overlay_alpha: float = 0.5
    retry_after_s: int = 1
    graceful_timeout_s: float = 30.0
    access_log: bool = False

    def __post_init__(self) -> None:
        positive = (
            "workers",
            "max_batch",
            "max_queue",
            "max_upload_bytes",
            "max_image_pixels",
            "retry_after_s",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be at least 1, got {self.threads}")
        if self.max_wait_ms < 0 or self.graceful_timeout_s < 0:
            raise InputError("max_wait_ms and graceful_timeout_s must not be negative")
        if not 0 < self.port < 65536:
            raise InputError(f"port must be within 1..65535, got {self.port}")
        from edgeseg.runtime.providers import (
            PROVIDER_CHOICES,  # here: the CLI reads these defaults at start-up
        )

        if self.provider not in PROVIDER_CHOICES:
            raise InputError(f"provider must be one of {', '.join(PROVIDER_CHOICES)}, got {self.provider!r}")
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise InputError(f"overlay_alpha must be within [0, 1], got {self.overlay_alpha}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ServeSettings:
        """Settings from keyword arguments; an unknown name raises :class:`InputError` listing known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InputError(
                f"unknown serve setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**kwargs)
