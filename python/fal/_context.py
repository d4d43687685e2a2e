"""The request a thread is working on, so that fal's module-level helpers (``File.from_bytes``,
``print``, ``logging``) reach it as fal's do without being handed a context."""

from __future__ import annotations

import threading
from typing import Optional

from darkroom_runner.context import Context

_local = threading.local()


def current() -> Optional[Context]:
    return getattr(_local, "ctx", None)


def require(what: str) -> Context:
    ctx = current()
    if ctx is None:
        raise RuntimeError(f"{what} stores a file for the request being served: call it from an endpoint")
    return ctx


class serving:
    """``with serving(ctx):`` marks this thread as working on ``ctx``'s request."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def __enter__(self) -> Context:
        self.previous = current()
        _local.ctx = self.ctx
        return self.ctx

    def __exit__(self, *exc: object) -> None:
        _local.ctx = self.previous
