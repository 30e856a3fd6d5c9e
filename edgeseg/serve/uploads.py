"""Reading an uploaded image from a request: body size limit, content types, multipart or raw bytes.

Decoding itself is the runtime's :func:`~edgeseg.runtime.decode_rgb` (EXIF orientation, greyscale, RGBA,
16-bit), which also checks the pixel limit from the header before decoding.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from starlette.requests import ClientDisconnect, Request

from edgeseg.errors import InputError
from edgeseg.runtime import ImageTooLarge, decode_rgb
from edgeseg.serve.errors import ServeError

RAW_TYPES = ("application/octet-stream",)
MULTIPART = "multipart/form-data"


class ClientGone(Exception):
    """The client closed the connection before its upload arrived."""


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def check_content_type(header: str | None, what: str = "request") -> str:
    """The media type of a content-type header if it is an image, raw bytes or multipart, else 415."""
    media = _media_type(header)
    if media.startswith("image/") or media in RAW_TYPES or media == MULTIPART:
        return media
    shown = media or "none"
    raise ServeError(
        415,
        "unsupported_media_type",
        f"{what} content type {shown!r} is not accepted; send image/* bytes, application/octet-stream "
        f"or {MULTIPART} with a file field",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it (or its declared length) exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    too_large = ServeError(413, "upload_too_large", f"request body exceeds the upload limit of {limit} bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect as err:
        raise ClientGone() from err
    return b"".join(chunks)


def _replay(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def upload_bytes(request: Request, limit: int) -> tuple[bytes, str]:
    """The uploaded image's bytes and a name for messages, from raw bytes or the first multipart file."""
    media = check_content_type(request.headers.get("content-type"))
    body = await read_body(request, limit)
    if media != MULTIPART:
        return body, "upload"
    try:
        form = await Request(request.scope, _replay(body)).form(max_files=1, max_fields=8)
    except Exception as err:  # python-multipart's errors have no common base worth naming
        raise ServeError(400, "bad_multipart", f"cannot parse the multipart body: {err}") from err
    try:
        files = [v for v in form.values() if not isinstance(v, str)]
        if not files:
            raise ServeError(
                400, "no_file", "the multipart body holds no file field; send the image as a file"
            )
        upload = files[0]
        name = upload.filename or "upload"
        check_content_type(upload.content_type or "application/octet-stream", f"file {name!r}")
        return await upload.read(), name
    finally:
        await form.close()


def decode_image(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """Decode an upload: 400 for bytes that are no image or a truncated one, 413 over the pixel limit."""
    if not data:
        raise ServeError(400, "empty_upload", f"{name}: the upload is empty")
    try:
        return decode_rgb(data, max_pixels, name)
    except ImageTooLarge as err:
        raise ServeError(413, "image_too_large", str(err)) from err
    except InputError as err:
        raise ServeError(400, "not_an_image", str(err)) from err
