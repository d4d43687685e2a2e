"""``print`` and ``logging`` inside an endpoint become the request's logs, as on fal.

Installed once, when the first fal app is loaded: ``sys.stdout`` and ``sys.stderr`` are wrapped by
writers that send whole lines to the request the writing thread serves (``_context``), and pass
everything else through; a handler on the root logger does the same for log records. Threads an
endpoint starts itself serve no request, so what they print goes to the runner's own output.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

from . import _context

_installed = False
_lock = threading.Lock()

_LEVELS = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN", logging.ERROR: "ERROR", logging.CRITICAL: "ERROR"}


class _RequestWriter:
    def __init__(self, wrapped: TextIO, level: str):
        self._wrapped = wrapped
        self._level = level
        self._pending = threading.local()

    def write(self, text: str) -> int:
        ctx = _context.current()
        if ctx is None:
            return self._wrapped.write(text)
        buffered = getattr(self._pending, "text", "") + text
        *lines, rest = buffered.split("\n")
        self._pending.text = rest
        for line in lines:
            ctx.log(line, self._level)
        return len(text)

    def flush(self) -> None:
        ctx = _context.current()
        rest = getattr(self._pending, "text", "")
        if ctx is not None and rest:
            self._pending.text = ""
            ctx.log(rest, self._level)
        self._wrapped.flush()

    def __getattr__(self, name: str):  # fileno, encoding, isatty... of the real stream
        return getattr(self._wrapped, name)


class _RequestLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        ctx = _context.current()
        # The runner's own log lines are not the app's.
        if ctx is None or record.name.split(".")[0] == "darkroom_runner":
            return
        try:
            ctx.log(self.format(record), _LEVELS.get(record.levelno, "INFO"))
        except Exception:  # noqa: BLE001 - a log line must never fail the request
            self.handleError(record)


def install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        sys.stdout = _RequestWriter(sys.stdout, "STDOUT")  # type: ignore[assignment]
        sys.stderr = _RequestWriter(sys.stderr, "STDERR")  # type: ignore[assignment]
        handler = _RequestLogHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        # What reaches it is what the loggers' levels let through (the runner's --log-level sets the root's).
        logging.getLogger().addHandler(handler)
