"""HTTP errors of the service: a status code, a short kind and a message naming the problem."""

from __future__ import annotations


class ServeError(Exception):
    """An error answered as ``{"error": kind, "detail": message}`` with ``status`` (and extra headers)."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.kind, "detail": self.message}
