"""The runner's HTTP client for ``/runner/v1``: JSON calls to one of several gateways, with failover.

A gateway that cannot be reached, or answers 502/503/504, is left for the next one in the list;
gateways keep no runner state, so the runner simply carries on there (the same rule as
``src/runtime/gateway-client.ts``). Refusals (other 4xx, 500) raise :class:`GatewayError` at once.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import threading
import time
import urllib.parse
from typing import Any, Callable, Optional

from .errors import GatewayError, GatewayUnreachable

TRANSIENT_STATUSES = {502, 503, 504}
_API_KEY = re.compile(r"^[^.:\s]+:\S+$")


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _Shared:
    """What the clients of one runner share: the gateway in use and the token."""

    def __init__(self, gateways: list[str], token: str, on_switch: Optional[Callable[[str], None]]):
        self.gateways = gateways
        self.token = token
        self.current = 0
        self.lock = threading.Lock()
        self.on_switch = on_switch


class GatewayClient:
    def __init__(self, gateways: list[str], token: str, *, on_switch: Optional[Callable[[str], None]] = None, timeout: float = 60.0):
        if not gateways:
            raise ValueError("at least one gateway URL is needed")
        for gateway in gateways:
            if urllib.parse.urlsplit(gateway).scheme not in ("http", "https"):
                raise ValueError(f"gateway URLs must be http(s), got {gateway!r}")
        self._shared = _Shared([g.rstrip("/") for g in gateways], token, on_switch)
        self.timeout = timeout
        self._lock = threading.Lock()
        # Connections that close() may have to break: a long poll blocks its thread otherwise.
        self._open: set[http.client.HTTPConnection] = set()
        self._closed = False

    def fork(self) -> "GatewayClient":
        """A client on the same gateway and token, whose close() breaks only its own calls."""
        twin = GatewayClient(self._shared.gateways, self._shared.token, timeout=self.timeout)
        twin._shared = self._shared
        return twin

    @property
    def gateways(self) -> list[str]:
        return self._shared.gateways

    @property
    def gateway(self) -> str:
        return self._shared.gateways[self._shared.current]

    @property
    def token(self) -> str:
        return self._shared.token

    @token.setter
    def token(self, token: str) -> None:
        self._shared.token = token

    def _authorization(self) -> str:
        # `id:secret` is an API key (fal's form); anything else a bearer token.
        return f"Key {self.token}" if _API_KEY.match(self.token) else f"Bearer {self.token}"

    def _switch(self, failed: str) -> None:
        shared = self._shared
        with shared.lock:
            # Another thread may have moved on already.
            if len(shared.gateways) < 2 or self.gateway != failed:
                return
            shared.current = (shared.current + 1) % len(shared.gateways)
            gateway = self.gateway
        if shared.on_switch:
            shared.on_switch(gateway)

    def close(self) -> None:
        """Breaks the calls in flight (they raise GatewayUnreachable) and refuses new ones."""
        self._closed = True
        with self._lock:
            open_now = list(self._open)
        for conn in open_now:
            try:
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def json(self, method: str, path: str, body: Any = None, *, retry_for: float = 0.0, timeout: Optional[float] = None) -> Any:
        """A JSON call; returns the decoded answer (None for 204)."""
        data = None if body is None else json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        res = self.request(method, path, body=data, headers=headers, retry_for=retry_for, timeout=timeout)
        return None if res.status == 204 else res.json()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | Callable[[], Any] | None = None,
        headers: Optional[dict[str, str]] = None,
        retry_for: float = 0.0,
        timeout: Optional[float] = None,
    ) -> Response:
        """A call with failover. ``body`` is bytes, or a function that opens a fresh file object for
        each try (so that a large upload streams from disk and can still be replayed)."""
        deadline = time.monotonic() + retry_for
        delay = 0.1
        tried = 0
        while True:
            if self._closed:
                raise GatewayUnreachable(f"{method} {path}: the client is closed")
            gateway = self.gateway
            failure: Optional[str] = None
            try:
                res = self._once(gateway, method, path, body, headers or {}, timeout or self.timeout)
            except (OSError, http.client.HTTPException) as err:
                failure = f"{type(err).__name__}: {err}"
            else:
                if res.status not in TRANSIENT_STATUSES:
                    if 200 <= res.status < 300:
                        return res
                    raise _error_from(res, method, path)
                failure = f"HTTP {res.status}"
            self._switch(gateway)
            tried += 1
            if self._closed or time.monotonic() >= deadline:
                raise GatewayUnreachable(f"{method} {path}: {failure} from {gateway}")
            if tried % len(self.gateways) == 0:
                # Every gateway failed once more: pause, growing, with jitter so runners spread out.
                time.sleep(min(delay * (0.5 + random.random()), max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 2.0)

    def _once(self, gateway: str, method: str, path: str, body: Any, headers: dict[str, str], timeout: float) -> Response:
        url = urllib.parse.urlsplit(gateway)
        conn_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = conn_class(url.hostname or "127.0.0.1", url.port, timeout=timeout)
        with self._lock:
            self._open.add(conn)
        payload = body() if callable(body) else body
        try:
            all_headers = {"authorization": self._authorization(), "user-agent": "darkroom-runner-python", **headers}
            if payload is not None and not isinstance(payload, (bytes, bytearray)) and "content-length" not in {k.lower() for k in all_headers}:
                raise ValueError("a streamed body needs a content-length header")
            conn.request(method, f"{url.path.rstrip('/')}{path}", body=payload, headers=all_headers)
            raw = conn.getresponse()
            data = raw.read()
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
        finally:
            if payload is not None and hasattr(payload, "close"):
                payload.close()
            with self._lock:
                self._open.discard(conn)
            conn.close()


def _error_from(res: Response, method: str, path: str) -> GatewayError:
    error_type = res.headers.get("x-fal-error-type")
    detail: Any = None
    try:
        parsed = res.json()
        if isinstance(parsed, dict):
            detail = parsed.get("detail")
            error_type = parsed.get("error_type", error_type)
    except ValueError:
        detail = res.body[:500].decode("utf-8", "replace")
    return GatewayError(res.status, error_type, detail, method, path)
