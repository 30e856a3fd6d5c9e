"""`edgeseg serve`: an HTTP service and a web page for an exported model, on the torch-free runtime.

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart, prometheus-client)::

    from edgeseg.serve import create_app
    app = create_app("student.onnx", max_batch=8)     # an ASGI app; mount it or run it with uvicorn

The web stack is imported on first use of ``create_app``/``run_server``, so ``edgeseg.serve.settings`` (which
the CLI reads its defaults from) works without the extra.
"""

from typing import Any

from edgeseg.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "run_server"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "run_server"):
        from edgeseg.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'edgeseg.serve' has no attribute {name!r}")
