"""What one request may ask of the server, and the JSON errors that name a broken limit.

Limits: bytes per request (checked from Content-Length before anything is read, and counted while
a body without one streams in), images per request, pixels per image (from the image header,
before decoding: a decompression bomb is refused unread), and seconds per request. Uploads are
decoded by `ganprint.data.load_image`, the library's one image reader, so the server accepts and
refuses exactly the files the CLI does.
"""

from __future__ import annotations

import asyncio
import io
import json
import warnings
from dataclasses import dataclass

from PIL import Image

from ..data import load_image
from ..errors import BadImageError, GanprintError

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 20 * MB  # one request's body
    max_images: int = 16  # images in one request
    max_pixels: int = 40_000_000  # width x height of one image (a 40 MP photo; bombs are far larger)
    request_timeout: float = 60.0  # seconds from the first byte in to the response


class ServeError(GanprintError):
    """An error answered as JSON: `{"error": sentence, "kind": kind, ...}` with an HTTP status.

    Violated limits carry `limit` (the configured value) so a client can tell what to change.
    """

    def __init__(self, status: int, kind: str, message: str, **extra):
        super().__init__(message)
        self.status, self.kind, self.extra = status, kind, extra

    def body(self) -> dict:
        return {"error": str(self), "kind": self.kind, **self.extra}


def limit_error(status: int, limit: str, value, message: str) -> ServeError:
    return ServeError(status, limit, message, limit=value)


def _header_pixels(data: bytes) -> int | None:
    """width x height from the image header (nothing decoded); None if PIL cannot identify it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.width * im.height
    except Image.DecompressionBombError:  # beyond twice PIL's own limit: a bomb by any measure
        return Image.MAX_IMAGE_PIXELS * 2 + 1
    except Exception:  # not an image, truncated header ...: load_image says which
        return None


def read_upload(data: bytes, name: str, limits: Limits) -> Image.Image:
    """One uploaded file as an 8-bit RGB PIL image, or a ServeError naming the file and the problem."""
    pixels = _header_pixels(data)
    if pixels is not None and pixels > limits.max_pixels:
        raise limit_error(
            422, "max_pixels", limits.max_pixels,
            f"{name}: {pixels} pixels, more than this server's limit of {limits.max_pixels} (possibly a "
            "decompression bomb); send a smaller image",
        )  # fmt: skip
    try:
        return load_image(data, name=name)
    except BadImageError as e:
        raise ServeError(422, "bad_image", f"{e}; send a complete PNG, JPEG, WebP, BMP, GIF or TIFF file",
                         image=name) from None  # fmt: skip


def check_image_count(count: int, limits: Limits) -> None:
    if count > limits.max_images:
        raise limit_error(413, "max_images", limits.max_images,
                          f"{count} images in one request; this server takes at most {limits.max_images}: "
                          "split them over several requests")  # fmt: skip


# ----------------------------------------------------------------------------- ASGI middleware
async def send_json(send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close"), *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": payload})


def _too_large(limits: Limits) -> ServeError:
    return limit_error(413, "max_upload_bytes", limits.max_upload_bytes,
                       f"the upload is larger than this server's limit of {limits.max_upload_bytes} bytes "
                       f"({limits.max_upload_bytes / MB:g} MB); send smaller or fewer images")  # fmt: skip


async def _drain(receive, budget: int) -> None:
    """Read and drop the rest of a refused body (at most `budget` bytes), so that the client, still
    sending, gets to read the 413 instead of a connection reset (a lingering close)."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class BodySizeLimit:
    """Refuse request bodies over `max_upload_bytes`: at once when Content-Length says so, else as
    soon as the streamed body passes the limit (the route sees a ServeError from `receive`). Up to
    `DRAIN_FACTOR` times the limit is read and dropped first; a larger upload gets its 413 and the
    connection is closed under it."""

    DRAIN_FACTOR = 4

    def __init__(self, app, limits: Limits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        budget = self.DRAIN_FACTOR * self.limits.max_upload_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limits.max_upload_bytes:
            error = _too_large(self.limits)
            scope.setdefault("state", {})["error_kind"] = error.kind
            if int(declared) <= budget:
                await _drain(receive, budget)
            return await send_json(send, error.status, error.body())
        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limits.max_upload_bytes:
                    if message.get("more_body", False):
                        await _drain(receive, budget - seen)
                    raise _too_large(self.limits)
            return message

        await self.app(scope, counted_receive, send)


class RequestTimeout:
    """A request that takes longer than `request_timeout` seconds is answered 408 (if nothing was
    sent yet) and cancelled; inference already running finishes in its thread and is dropped."""

    def __init__(self, app, limits: Limits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracked_send), self.limits.request_timeout)
        except asyncio.TimeoutError:
            if started:
                raise
            scope.setdefault("state", {})["error_kind"] = "request_timeout"
            error = limit_error(408, "request_timeout", self.limits.request_timeout,
                                f"the request took longer than this server's limit of {self.limits.request_timeout:g} "
                                "s; try again with fewer images, or later")  # fmt: skip
            await send_json(send, error.status, error.body())
