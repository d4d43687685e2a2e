"""The runner as the gateway's own child: ``darkroom serve --apps path/app.py::Class`` starts it.

The scheduler that started this process speaks the same runner protocol to it as to its TypeScript
runners (``src/runtime/protocol.ts``), as JSON lines over a socket the process inherits (``--ipc-fd``),
so that Python apps get what TypeScript apps get: min and max runners, keep-alive, scale to zero,
cancellation at once, request timeouts, crash recovery and cold starts in ``/v1/ops``. The handlers
run exactly as under :class:`~darkroom_runner.runner.Runner` (threads, logs, progress, partials,
cancellation); only where runs come from and where their events, outcomes and output files go differ.

Output files travel over the socket too (base64 in a JSON line), and the gateway writes them into
its storage: no token and no gateway URL are needed, and nothing but the scheduler can talk to this
runner.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import threading
import time
from typing import Any, Callable, Optional

from .app import App
from .context import FileBody, read_all
from .errors import Cancelled, RunnerError
from .runner import PROTOCOL_VERSION, Runner, _Held

log = logging.getLogger("darkroom_runner")

HEARTBEAT_S = 2.0
# An output file the scheduler has not answered for in this long is reported as failed.
STORE_TIMEOUT_S = 600.0


class IpcRunner(Runner):
    """Serves ``app`` to the scheduler at the other end of ``channel``. ``start()`` runs setup and
    says ready; the process ends when the scheduler says drain (after the held requests) or goes."""

    def __init__(
        self,
        app: App,
        channel: socket.socket,
        *,
        runner_id: str = "",
        process_started: Optional[float] = None,
        runtime_loaded: Optional[float] = None,
        import_ms: float = 0.0,
        on_closed: Callable[[], None] = lambda: os._exit(0),
    ):
        super().__init__(app, [], "")
        # The scheduler is gone (the socket closed): nobody can take results any more.
        self._on_closed = on_closed
        self._channel = channel
        self._write_lock = threading.Lock()
        # The scheduler's id for this process: output files are accepted for the requests it holds.
        self._ipc_runner_id = runner_id
        self._process_started = process_started if process_started is not None else time.time()
        self._runtime_loaded = runtime_loaded if runtime_loaded is not None else self._process_started
        self._import_ms = import_ms
        self._stores: dict[str, tuple[threading.Event, list[dict]]] = {}
        self._stores_lock = threading.Lock()
        self._next_call = 0
        self._exit = threading.Event()
        # The knobs the scheduler enforces (the operator's overrides included), where the base class
        # reads a registration's: request_timeout is kept here too.
        knobs = os.environ.get("DARKROOM_APP_KNOBS_JSON")
        if knobs:
            self._registration = {"knobs": {**app.resolved_knobs(), **json.loads(knobs)}}

    @property
    def runner_id(self) -> Optional[str]:
        return self._ipc_runner_id

    def send(self, message: dict) -> None:
        line = (json.dumps(message, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._write_lock:
            try:
                self._channel.sendall(line)
            except OSError:
                self._on_closed()

    # --- lifecycle ---

    def start(self) -> None:
        self.send({"t": "hello", "protocol": PROTOCOL_VERSION, "appId": self.app.id, "pid": os.getpid()})
        started = time.monotonic()
        try:
            self.app.run_setup()
        except BaseException as err:  # noqa: BLE001 (the scheduler decides what a failed setup means)
            log.exception("setup() of %s failed", self.app.id)
            self.send({"t": "setup_failed", "error": {"code": "ERR_APP_ERROR", "message": f"{type(err).__name__}: {err}"[:64 * 1024]}})
            raise
        setup_ms = (time.monotonic() - started) * 1000
        phases = {
            "processStartedAt": self._process_started * 1000,
            "runtimeLoadedAt": self._runtime_loaded * 1000,
            "appAssignedAt": self._runtime_loaded * 1000,
            "importMs": self._import_ms,
        }
        self.send({"t": "ready", "setupMs": setup_ms, "phases": phases})
        for target, name in ((self._read_loop, "ipc-read"), (self._ipc_heartbeats, "heartbeat")):
            thread = threading.Thread(target=target, name=f"darkroom-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def serve_forever(self) -> None:
        self._exit.wait()

    def _read_loop(self) -> None:
        reader = self._channel.makefile("rb")
        for line in reader:
            try:
                message = json.loads(line)
            except ValueError:
                log.error("unreadable message from the scheduler: %r", line[:200])
                continue
            kind = message.get("t")
            if kind == "run":
                self._begin(_run_of(message))
            elif kind == "cancel":
                with self._held_lock:
                    held = self._held.get(str(message.get("requestId")))
                if held is not None:
                    self._stop_handler(held, "cancel")
            elif kind == "drain":
                threading.Thread(target=self._drain, name="darkroom-drain", daemon=True).start()
            elif kind in ("file_stored", "file_failed"):
                self._stored(message)
        # The socket closed: the scheduler is gone (or killed us a moment ago).
        self._on_closed()

    def _drain(self) -> None:
        # The scheduler bounds the drain itself (its grace, then SIGKILL): wait for every request.
        self.stop(grace=24 * 3600.0)
        self._exit.set()

    def _ipc_heartbeats(self) -> None:
        while not self._stopped.wait(HEARTBEAT_S):
            self.send({"t": "heartbeat", "inFlight": self.in_flight})

    # --- events and outcomes ---

    def _post_events(self, held: _Held, quoted: str, events: list[dict]) -> None:
        for event in events:
            kind = event["type"]
            if kind == "log":
                level = "WARN" if event["level"] == "WARNING" else event["level"]
                self.send({"t": "log", "requestId": held.request_id, "level": level, "message": event["message"], "timestamp": event["timestamp"]})
            elif kind == "progress":
                step, total = float(event["step"]), float(event["total"])
                progress: dict[str, Any] = {"step": step, "total": total, "fraction": min(1.0, step / total) if total > 0 else 0.0}
                if event.get("message"):
                    progress["message"] = event["message"]
                self.send({"t": "progress", "requestId": held.request_id, "progress": progress})
            elif kind == "partial":
                self.send({"t": "partial", "requestId": held.request_id, "data": event["data"]})

    def _post_outcome(self, held: _Held, quoted: str, outcome: tuple[str, dict]) -> None:
        kind, payload = outcome
        if kind == "result":
            message: dict[str, Any] = {"t": "result", "requestId": held.request_id, "output": payload.get("output")}
            if payload.get("billable_units") is not None:
                message["billableUnits"] = payload["billable_units"]
        else:
            error: dict[str, Any] = {"code": str(payload.get("code", "ERR_APP_ERROR")), "message": str(payload.get("message", ""))}
            if payload.get("status") is not None:
                error["status"] = int(payload["status"])
            if payload.get("field_errors"):
                error["fieldErrors"] = payload["field_errors"]
            message = {"t": "error", "requestId": held.request_id, "error": error}
        self.send(message)

    # --- output files ---

    def _store_output(self, held: _Held, key: str, data: FileBody, content_type: str, name: str) -> dict:
        raw = read_all(data)
        with self._stores_lock:
            self._next_call += 1
            call_id = str(self._next_call)
            done = threading.Event()
            answer: list[dict] = []
            self._stores[call_id] = (done, answer)
        message: dict[str, Any] = {
            "t": "put_file",
            "callId": call_id,
            "requestId": held.request_id,
            "key": key,
            "contentType": content_type,
            "fileName": name,
            "data": base64.b64encode(raw).decode("ascii"),
        }
        if held.output_ttl is not None:
            message["expiresInSeconds"] = int(held.output_ttl)
        try:
            self.send(message)
            if not done.wait(STORE_TIMEOUT_S):
                raise RunnerError("ERR_INTERNAL", f"Storing {name} took longer than {STORE_TIMEOUT_S:.0f} s")
        finally:
            with self._stores_lock:
                self._stores.pop(call_id, None)
        reply = answer[0]
        if reply.get("t") == "file_failed":
            error = reply.get("error") or {}
            if error.get("code") == "ERR_LEASE_LOST":
                raise Cancelled("The runner no longer holds this request")
            raise RunnerError(str(error.get("code", "ERR_INTERNAL")), str(error.get("message", f"Storing {name} failed")))
        return {"key": reply["key"], "size": reply.get("size", len(raw)), "content_type": reply.get("contentType", content_type), "file_name": reply.get("fileName", name)}

    def _stored(self, message: dict) -> None:
        with self._stores_lock:
            waiting = self._stores.get(str(message.get("callId")))
        if waiting is not None:
            done, answer = waiting
            answer.append(message)
            done.set()


def _run_of(message: dict) -> dict:
    """The scheduler's ``run`` message as the runner's lease entries look (snake_case)."""
    run: dict[str, Any] = {
        "request_id": message["requestId"],
        "attempt": message.get("attempt", 1),
        "endpoint": message.get("endpoint", ""),
        "base_url": message.get("baseUrl", ""),
        "files_url": message.get("filesUrl"),
        "sync_mode": message.get("syncMode") is True,
        "output_ttl_seconds": message.get("outputTtlSeconds"),
    }
    # A large input comes as its JSON text, parsed here rather than by the scheduler.
    run["input"] = json.loads(message["inputJsonText"]) if "inputJsonText" in message else message.get("input")
    return run


def serve_over_ipc(app: App, fd: int, *, process_started: float, runtime_loaded: float, import_ms: float) -> int:
    """Serves ``app`` over the socket inherited as ``fd`` until the scheduler drains or leaves."""
    channel = socket.socket(fileno=fd)
    runner = IpcRunner(app, channel, runner_id=os.environ.get("DARKROOM_RUNNER_ID", ""), process_started=process_started, runtime_loaded=runtime_loaded, import_ms=import_ms)
    try:
        runner.start()
    except BaseException:  # noqa: BLE001 (reported as setup_failed; the scheduler decides what follows)
        return 1
    signal.signal(signal.SIGTERM, lambda _signum, _frame: threading.Thread(target=runner._drain, name="darkroom-drain", daemon=True).start())
    runner.serve_forever()
    return 0
