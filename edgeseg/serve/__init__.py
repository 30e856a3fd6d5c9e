"""`edgeseg serve`: an HTTP service and a web page for an exported model, on the torch-free runtime.

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart, prometheus-client)::

    from edgeseg.serve import create_app
    app = create_app("student.onnx", max_batch=8)     # an ASGI app; mount it or run it with uvicorn

The web stack is imported on first use of ``create_app``/``run_server``, so ``edgeseg.serve.settings`` (which
the CLI reads its defaults from) works without the extra.
"""

from edgeseg.lazy import lazy_getattr
from edgeseg.serve.settings import ServeSettings

_LAZY = {"create_app": "edgeseg.serve.app", "run_server": "edgeseg.serve.app"}

__all__ = ["ServeSettings", *_LAZY]

__getattr__ = lazy_getattr("edgeseg.serve", _LAZY)
