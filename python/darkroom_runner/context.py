"""What a handler gets besides its input: ``ctx``."""

from __future__ import annotations

import base64
import datetime
import io
import os
import threading
import urllib.parse
import urllib.request
from typing import Any, BinaryIO, Callable, Optional, Union

from .errors import Cancelled, RunnerError

LOG_LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "STDOUT", "STDERR")

FileBody = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO]


def iso_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Context:
    """The handler's view of its request.

    ``cancelled`` is set when the client cancels, the request runs past ``request_timeout``, the
    lease is lost or the runner drains past its grace period; a handler checks it between steps
    (``ctx.check_cancelled()``) or waits on it (``ctx.sleep(seconds)``). Python cannot stop a thread
    from outside, so a handler that never looks is reported cancelled after a grace period and left
    to finish on its own, its output dropped.
    """

    def __init__(
        self,
        *,
        request_id: str,
        attempt: int,
        endpoint: str,
        state: Any,
        sync_mode: bool,
        send_event: Callable[[dict], None],
        upload: Callable[[FileBody, str, str], dict],
    ):
        self.request_id = request_id
        self.attempt = attempt
        self.endpoint = endpoint
        self.state = state
        self.sync_mode = sync_mode
        self.cancelled = threading.Event()
        self.billable_units: Optional[float] = None
        self._send_event = send_event
        self._upload = upload

    def log(self, message: str, level: str = "INFO") -> None:
        """Appends a line to the request's logs (status endpoints with ``logs=1``)."""
        level = level.upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
        self._send_event({"type": "log", "level": level, "message": str(message)[: 64 * 1024], "timestamp": iso_now()})

    def progress(self, step: float, total: float, message: Optional[str] = None) -> None:
        """Reports ``step`` of ``total``: ``progress`` in status bodies and status-stream events."""
        event: dict[str, Any] = {"type": "progress", "step": max(0, step), "total": max(0, total)}
        if message:
            event["message"] = str(message)[:1000]
        self._send_event(event)

    def emit(self, partial: Any) -> None:
        """Sends a partial result (a ``/stream`` event; ``partial`` in status-stream bodies)."""
        self._send_event({"type": "partial", "data": partial})

    def bill(self, units: float) -> None:
        """Sets the request's billable units (the last call wins)."""
        self.billable_units = float(units)

    def check_cancelled(self) -> None:
        """Raises :class:`Cancelled` once the request is cancelled: call it between steps."""
        if self.cancelled.is_set():
            raise Cancelled()

    def sleep(self, seconds: float) -> None:
        """Sleeps, but raises :class:`Cancelled` as soon as the request is cancelled."""
        if self.cancelled.wait(max(0.0, seconds)):
            raise Cancelled()

    def upload(
        self,
        data: FileBody,
        content_type: str = "application/octet-stream",
        file_name: Optional[str] = None,
        *,
        width: Optional[int] = None,
        height: Optional[int] = None,
    ) -> dict:
        """Stores an output file and returns fal's ``File`` record ``{url, content_type, file_name,
        file_size}`` (plus ``width``/``height`` when given). ``data`` is bytes, a path, or a binary
        file object. With ``sync_mode: true`` in the input the file comes back inline as a ``data:``
        URI and is not stored, as on fal."""
        record = dict(self._upload(data, content_type, file_name or ""))
        if width is not None:
            record["width"] = int(width)
        if height is not None:
            record["height"] = int(height)
        return record

    def read(self, url: str, max_bytes: int = 512 * 1024 * 1024, timeout: float = 60.0) -> tuple[bytes, str]:
        """Reads an input file given as a ``data:`` URI or an http(s) URL: ``(bytes, content type)``.

        Unlike the TypeScript runtime there is no SSRF guard here: the runner fetches what the
        input names from wherever it runs. Keep runners off networks that clients must not reach.
        """
        # URL schemes are case-insensitive (RFC 3986): `DATA:` is a data URI too.
        if url[:5].lower() == "data:":
            return parse_data_uri(url, max_bytes)
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise RunnerError("ERR_FETCH_REFUSED", f"only http(s) and data: URLs are read, got {scheme or url!r}")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as res:  # noqa: S310 (scheme checked above)
                data = res.read(max_bytes + 1)
                content_type = res.headers.get_content_type()
        except OSError as err:
            raise RunnerError("ERR_FETCH_FAILED", f"Could not fetch {url}: {err}") from err
        if len(data) > max_bytes:
            raise RunnerError("ERR_FILE_TOO_LARGE", f"{url} exceeds {max_bytes} bytes")
        return data, content_type


def parse_data_uri(uri: str, max_bytes: int) -> tuple[bytes, str]:
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise RunnerError("ERR_BAD_REQUEST", "Malformed data: URI")
    parts = header.split(";")
    content_type = parts[0] or "text/plain"
    try:
        data = base64.b64decode(payload, validate=False) if "base64" in parts[1:] else urllib.parse.unquote_to_bytes(payload)
    except ValueError as err:
        raise RunnerError("ERR_BAD_REQUEST", f"Malformed data: URI: {err}") from err
    if len(data) > max_bytes:
        raise RunnerError("ERR_FILE_TOO_LARGE", f"data: URI exceeds {max_bytes} bytes")
    return data, content_type


def read_all(data: FileBody) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as f:
            return f.read()
    if isinstance(data, io.IOBase) or hasattr(data, "read"):
        return data.read()
    raise TypeError(f"upload takes bytes, a path or a binary file object, got {type(data).__name__}")
