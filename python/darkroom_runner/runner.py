"""The runner: serves one :class:`~darkroom_runner.app.App` for Darkroom gateways over ``/runner/v1``.

It behaves as the TypeScript runner does (``src/runtime/remote-runner.ts``): it registers the app's
manifest, long-polls for leases with its free slots, heartbeats the requests it holds (learning of
cancellations and lost leases), sends each request's logs, progress and partials in order and in
batches, uploads output files, and reports each outcome once, after the events. Outcomes are only
accepted from the lease holder at that attempt, so a request retried elsewhere after this runner
went silent is never completed twice; if this process dies its leases expire and the gateway
retries the requests.

Threads: one per running handler (at most ``slots``), one sender per held request (its events,
then its outcome, in order), one for the long poll and one for heartbeats.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
import traceback
import urllib.parse
from typing import Any, Optional

from .app import App, Endpoint
from .client import GatewayClient
from .context import Context, FileBody, iso_now, read_all
from .errors import Cancelled, GatewayError, GatewayUnreachable, RunnerError, validation_error
from .schema import SchemaError, Validator

PROTOCOL_VERSION = 1
EVENT_FLUSH_S = 0.02
MAX_BATCH = 200
LEASE_RETRY_MAX_S = 5.0

log = logging.getLogger("darkroom_runner")

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "video/mp4": "mp4",
    "application/json": "json",
    "text/plain": "txt",
}


def safe_file_name(name: str, content_type: str) -> str:
    """The name the gateway will keep: ``[A-Za-z0-9._-]``, no leading dots, at most 100 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name or "").lstrip(".")[:100]
    return cleaned or f"output.{_EXTENSIONS.get(content_type.split(';')[0].strip(), 'bin')}"


def token_refresh_due(token: str, now: Optional[float] = None) -> bool:
    """True in the last third of a runner token's life; never for an admin key (``id:secret``)."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        iat, exp = float(claims["iat"]), float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return False
    now = time.time() if now is None else now
    return now >= exp - (exp - iat) / 3


class _Held:
    """A request this runner holds, from its lease to its reported outcome."""

    def __init__(self, run: dict):
        self.request_id: str = run["request_id"]
        self.attempt: int = int(run["attempt"])
        self.endpoint: str = run.get("endpoint", "")
        self.input: Any = run.get("input")
        self.base_url: str = str(run.get("base_url", "")).rstrip("/")
        # The gateway's --files-url, sent only when it has one: output URLs go on that origin.
        self.files_url: str = str(run.get("files_url") or self.base_url).rstrip("/")
        self.sync_mode: bool = run.get("sync_mode") is True
        self.output_ttl: Optional[int] = run.get("output_ttl_seconds")
        self.cond = threading.Condition()
        self.pending: list[dict] = []
        # ("result" | "error", body) once decided; sent after every pending event.
        self.outcome: Optional[tuple[str, dict]] = None
        self.settled = False
        # The lease is gone: nothing more is sent for this request.
        self.abandoned = False
        self.stop_reason: Optional[str] = None
        self.timers: list[threading.Timer] = []
        self.ctx: Optional[Context] = None
        self.done = threading.Event()


class Runner:
    """Serves ``app``. ``start()`` runs setup and registers; ``stop()`` drains."""

    def __init__(
        self,
        app: App,
        gateways: list[str],
        token: str,
        *,
        slots: Optional[int] = None,
        runner_id: Optional[str] = None,
        poll_wait_ms: Optional[int] = None,
        cancel_grace: float = 5.0,
        hostname: Optional[str] = None,
    ):
        self.app = app
        self.slots = slots or int(app.resolved_knobs()["max_multiplexing"]) or 1
        if not 1 <= self.slots <= 64:
            raise ValueError(f"slots must be 1 to 64, got {self.slots}")
        self.cancel_grace = cancel_grace
        self.hostname = hostname or socket.gethostname()
        self._wanted_id = runner_id
        # Set by the CLI: when the process began (unix seconds) and its runtime and import times (ms),
        # reported with the first registration as the start's phases.
        self.process_started: Optional[float] = None
        self.start_phases: Optional[dict] = None
        self._poll_wait_ms = poll_wait_ms
        # No gateways: a runner the gateway started itself, which talks to it over a pipe (ipc.py).
        self._client: Any = GatewayClient(gateways, token, on_switch=self._switched) if gateways else None
        # The long poll has a client of its own, so that stop() can break it without breaking the
        # outcome reports still in flight.
        self._lease_client: Any = self._client.fork() if self._client else None
        self._validators = {path: Validator(e.input_schema) for path, e in app.endpoints.items()}
        self._held: dict[str, _Held] = {}
        self._held_lock = threading.Lock()
        self._slot_freed = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._registration: Optional[dict] = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle ---

    @property
    def runner_id(self) -> Optional[str]:
        return self._registration["runner_id"] if self._registration else None

    @property
    def in_flight(self) -> list[str]:
        with self._held_lock:
            return list(self._held)

    def start(self) -> None:
        """Runs the app's setup(), registers, and starts taking work (in background threads). An
        app that cannot run here (``app.unavailable``) is registered as such and takes no work."""
        if self.app.unavailable:
            self.start_phases = None  # no start to report: nothing will run
            self._register()
            log.warning("%s is unavailable here: %s. Remedy: %s", self.app.id, self.app.unavailable["reason"], self.app.unavailable["remedy"])
            return
        started = time.monotonic()
        self.app.run_setup()
        setup_s = time.monotonic() - started
        log.info("setup of %s finished in %.1f s", self.app.id, setup_s)
        if self.start_phases is not None:
            self.start_phases = {**self.start_phases, "setup_ms": setup_s * 1000}
        self._register()
        log.info("serving %s as %s with %d slot(s) via %s", self.app.id, self.runner_id, self.slots, self._client.gateway)
        for target, name in ((self._lease_loop, "lease"), (self._heartbeat_loop, "heartbeat")):
            thread = threading.Thread(target=target, name=f"darkroom-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def serve_forever(self) -> None:
        """Blocks until stop() finished."""
        while not self._stopped.wait(0.5):
            pass

    def stop(self, grace: float = 30.0) -> None:
        """Takes no more work and lets held requests finish for up to ``grace`` seconds; those still
        running then are handed back with ERR_RUNNER_DISCONNECTED, so that the gateway retries them
        at once rather than after their lease runs out."""
        if self._stopping.is_set():
            self._stopped.wait()
            return
        self._stopping.set()
        self._slot_freed.set()
        if self._lease_client:
            self._lease_client.close()
        deadline = time.monotonic() + grace
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._held_lock:
            left = list(self._held.values())
        for held in left:
            if held.ctx:
                held.ctx.cancelled.set()
            self._settle(held, "error", {"code": "ERR_RUNNER_DISCONNECTED", "message": "Runner stopped while the request ran"})
        lease_s = (self._registration or {}).get("lease_ms", 30_000) / 1000
        for held in left:
            held.done.wait(lease_s + 5)
        try:
            self.app.teardown()
        except Exception:  # noqa: BLE001 (a failing teardown must not keep the process up)
            log.exception("teardown() failed")
        self._stopped.set()

    # --- registration ---

    def _register(self) -> None:
        body: dict[str, Any] = {
            "protocol": PROTOCOL_VERSION,
            "app": self.app.manifest(),
            "runner": {"hostname": self.hostname[:255], "pid": os.getpid(), "slots": self.slots},
        }
        runner_id = self.runner_id or self._wanted_id
        if runner_id:
            body["runner_id"] = runner_id
        # How the start went, on the first registration only (a re-registration is no start).
        phases = self.start_phases
        if phases is not None and self._registration is None and {"runtime_ms", "import_ms", "setup_ms"} <= phases.keys():
            body["start"] = {**phases, "ready_ms": max(0.0, (time.time() - (self.process_started or time.time())) * 1000)}
        self._registration = self._client.json("POST", "/runner/v1/register", body, retry_for=60.0)
        self.start_phases = None

    def _switched(self, gateway: str) -> None:
        log.warning("switched to gateway %s", gateway)
        if self._registration is None:
            return

        def again() -> None:
            # A gateway that does not know this app learns it from the registration (idempotent).
            try:
                self._register()
            except Exception as err:  # noqa: BLE001
                log.warning("re-registering failed: %s", err)

        threading.Thread(target=again, name="darkroom-register", daemon=True).start()

    # --- leases ---

    def _lease_loop(self) -> None:
        backoff = 0.25
        registration = self._registration or {}
        poll_wait = int(registration.get("poll_wait_ms", 30_000))
        wait_ms = min(self._poll_wait_ms, poll_wait) if self._poll_wait_ms is not None else poll_wait
        while not self._stopping.is_set():
            self._slot_freed.clear()
            free = self.slots - len(self.in_flight)
            if free <= 0:
                self._slot_freed.wait(1.0)
                continue
            try:
                answer = self._lease_client.json(
                    "POST",
                    "/runner/v1/lease",
                    {"runner_id": self.runner_id, "app_id": self.app.id, "slots": free, "wait_ms": wait_ms},
                    timeout=wait_ms / 1000 + 15,
                )
                backoff = 0.25
            except (GatewayError, GatewayUnreachable, ValueError) as err:
                if self._stopping.is_set():
                    return
                log.warning("lease call failed: %s", err)
                if isinstance(err, GatewayError) and err.status == 404:
                    try:
                        self._register()
                    except Exception as again:  # noqa: BLE001
                        log.warning("re-registering failed: %s", again)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, LEASE_RETRY_MAX_S)
                continue
            for run in (answer or {}).get("runs", []):
                self._begin(run)

    def _begin(self, run: dict) -> None:
        held = _Held(run)
        with self._held_lock:
            self._held[held.request_id] = held
        sender = threading.Thread(target=self._sender, args=(held,), name=f"darkroom-send-{held.request_id[:8]}", daemon=True)
        sender.start()
        if self._stopping.is_set():
            # Leased while the runner stopped: straight back to the queue.
            self._settle(held, "error", {"code": "ERR_RUNNER_DISCONNECTED", "message": "Runner is stopping"})
            return
        knobs = (self._registration or {}).get("knobs") or self.app.resolved_knobs()
        held.ctx = Context(
            request_id=held.request_id,
            attempt=held.attempt,
            endpoint=held.endpoint,
            state=self.app.state,
            sync_mode=held.sync_mode,
            send_event=lambda event: self._queue_event(held, event),
            upload=lambda data, content_type, name: self._upload(held, data, content_type, name),
        )
        # request_timeout is enforced here: the gateway does not see the handler.
        timeout = threading.Timer(float(knobs.get("request_timeout", 300)), self._stop_handler, args=(held, "timeout"))
        timeout.daemon = True
        held.timers.append(timeout)
        timeout.start()
        handler = threading.Thread(target=self._run, args=(held,), name=f"darkroom-run-{held.request_id[:8]}", daemon=True)
        handler.start()
        if run.get("cancel_requested"):
            self._stop_handler(held, "cancel")

    # --- running a handler ---

    def _stop_error(self, held: _Held) -> Optional[dict]:
        if held.stop_reason == "cancel":
            return {"code": "ERR_CLIENT_CANCELLED", "message": "Request cancelled by client"}
        if held.stop_reason == "timeout":
            seconds = ((self._registration or {}).get("knobs") or self.app.resolved_knobs()).get("request_timeout")
            return {"code": "ERR_REQUEST_TIMEOUT", "message": f"Request ran longer than request_timeout ({seconds} s)"}
        return None

    def _run(self, held: _Held) -> None:
        ctx = held.ctx
        assert ctx is not None
        try:
            endpoint = self.app.endpoints.get(held.endpoint)
            if endpoint is None:
                raise RunnerError("ERR_PATH_NOT_FOUND", f"Path /{held.endpoint} not found")
            output = self._call(endpoint, held, ctx)
            stopped = self._stop_error(held)
            if stopped:
                # A handler that returns after its request was stopped still ends stopped.
                self._settle(held, "error", stopped)
                return
            try:
                json.dumps(output, allow_nan=False)
            except (TypeError, ValueError) as err:
                raise RunnerError("ERR_APP_ERROR", f"The handler's output is not JSON: {err}") from err
            body: dict[str, Any] = {"output": output}
            if ctx.billable_units is not None:
                body["billable_units"] = max(0.0, ctx.billable_units)
            self._settle(held, "result", body)
        except BaseException as err:  # noqa: BLE001 (SystemExit in a handler must end its request, not the runner)
            stopped = self._stop_error(held)
            if stopped:
                self._settle(held, "error", stopped)
            elif isinstance(err, RunnerError):
                self._settle(held, "error", err.to_wire())
            else:
                self._queue_event(held, {"type": "log", "level": "ERROR", "message": traceback.format_exc()[-60_000:], "timestamp": iso_now()})
                self._settle(held, "error", {"code": "ERR_APP_ERROR", "message": str(err) or type(err).__name__})

    def _call(self, endpoint: Endpoint, held: _Held, ctx: Context) -> Any:
        try:
            value, errors = self._validators[endpoint.path].validate(held.input if held.input is not None else {})
        except SchemaError as err:
            raise RunnerError("ERR_APP_ERROR", f"The endpoint's input schema is unusable: {err}") from err
        if errors:
            raise validation_error(errors)
        result = endpoint.handler(value, ctx)
        if endpoint.kind == "stream" or inspect.isgenerator(result):
            last: Any = None
            produced = False
            for item in result:
                ctx.check_cancelled()
                ctx.emit(item)
                last, produced = item, True
            if not produced:
                raise RunnerError("ERR_RUNNER_INCOMPLETE", "The streaming handler yielded nothing")
            result = last
        return result

    def _stop_handler(self, held: _Held, reason: str) -> None:
        """Tells a handler to stop; if it has not within the grace period, reports it anyway."""
        with held.cond:
            if held.settled or held.stop_reason:
                return
            held.stop_reason = reason
        if held.ctx:
            held.ctx.cancelled.set()

        def overdue() -> None:
            if not held.settled:
                log.warning("handler for %s ignored its cancellation for %.1f s; reporting it anyway", held.request_id, self.cancel_grace)
                error = self._stop_error(held)
                if error:
                    self._settle(held, "error", error)

        timer = threading.Timer(self.cancel_grace, overdue)
        timer.daemon = True
        held.timers.append(timer)
        timer.start()

    # --- events and outcomes ---

    def _queue_event(self, held: _Held, event: dict) -> None:
        if event["type"] == "partial":
            json.dumps(event["data"], allow_nan=False)  # raises in the handler, where the mistake is
        with held.cond:
            if held.settled or held.abandoned:
                return
            # Only the latest progress matters; an older one still waiting is dropped.
            if event["type"] == "progress":
                held.pending = [e for e in held.pending if e["type"] != "progress"]
            held.pending.append(event)
            held.cond.notify()

    def _settle(self, held: _Held, kind: str, body: dict) -> bool:
        """Decides the request's outcome, once; the sender reports it after the pending events."""
        with held.cond:
            if held.settled:
                return False
            held.settled = True
            held.outcome = (kind, body)
            held.cond.notify()
        for timer in held.timers:
            timer.cancel()
        return True

    def _abandon(self, held: _Held) -> None:
        """The lease is gone (another runner may hold the request now): stop, report nothing."""
        log.warning("lost the lease on %s; abandoning it", held.request_id)
        with held.cond:
            held.abandoned = True
            held.settled = True
            held.stop_reason = held.stop_reason or "lost"
            held.pending.clear()
            held.cond.notify()
        for timer in held.timers:
            timer.cancel()
        if held.ctx:
            held.ctx.cancelled.set()

    def _sender(self, held: _Held) -> None:
        quoted = urllib.parse.quote(held.request_id, safe="")
        try:
            while True:
                with held.cond:
                    while not held.pending and held.outcome is None and not held.abandoned:
                        held.cond.wait()
                    if held.abandoned:
                        return
                    gathering = held.outcome is None
                if gathering:
                    # A burst of events goes out in one call; the outcome, when it comes first, does not wait.
                    with held.cond:
                        deadline = time.monotonic() + EVENT_FLUSH_S
                        while held.outcome is None and not held.abandoned and (left := deadline - time.monotonic()) > 0:
                            held.cond.wait(left)
                with held.cond:
                    if held.abandoned:
                        return
                    batch = held.pending[:MAX_BATCH]
                    del held.pending[: len(batch)]
                    outcome = held.outcome if not held.pending else None
                if batch:
                    self._post_events(held, quoted, batch)
                if outcome is not None and not held.abandoned:
                    self._post_outcome(held, quoted, outcome)
                    return
        finally:
            with self._held_lock:
                if self._held.get(held.request_id) is held:
                    del self._held[held.request_id]
            held.done.set()
            self._slot_freed.set()

    def _post_events(self, held: _Held, quoted: str, events: list[dict]) -> None:
        body = {"runner_id": self.runner_id, "attempt": held.attempt, "events": events}
        try:
            self._client.json("POST", f"/runner/v1/requests/{quoted}/events", body, retry_for=10.0)
        except GatewayError as err:
            if err.lease_lost:
                self._abandon(held)
            else:
                log.warning("dropping %d event(s) of %s: %s", len(events), held.request_id, err)
        except (GatewayUnreachable, ValueError) as err:
            log.warning("dropping %d event(s) of %s: %s", len(events), held.request_id, err)

    def _post_outcome(self, held: _Held, quoted: str, outcome: tuple[str, dict]) -> None:
        kind, payload = outcome
        body: dict[str, Any] = {"runner_id": self.runner_id, "attempt": held.attempt}
        if kind == "result":
            body.update(payload)  # output, and billable_units when the handler billed
        else:
            body["error"] = payload
        lease_s = (self._registration or {}).get("lease_ms", 30_000) / 1000
        try:
            # While the lease lasts the outcome can still land (on any gateway); after that the
            # request is someone else's.
            self._client.json("POST", f"/runner/v1/requests/{quoted}/{kind}", body, retry_for=lease_s)
        except GatewayError as err:
            if err.lease_lost:
                log.warning("outcome of %s refused: the lease was lost", held.request_id)
            else:
                log.error("reporting %s failed: %s", held.request_id, err)
        except GatewayUnreachable as err:
            log.error("could not report %s: %s; its lease will expire and it will be retried", held.request_id, err)

    # --- heartbeats and the token ---

    def _heartbeat_loop(self) -> None:
        interval = (self._registration or {}).get("heartbeat_ms", 10_000) / 1000
        while not self._stopped.wait(interval):
            try:
                self._refresh_token()
            except Exception as err:  # noqa: BLE001
                log.warning("token refresh failed: %s", err)
            with self._held_lock:
                # Settled ones too: their lease must last until the outcome has landed.
                held = [h for h in self._held.values() if not h.abandoned]
            if not held:
                continue
            try:
                answer = self._client.json(
                    "POST",
                    "/runner/v1/heartbeat",
                    {"runner_id": self.runner_id, "requests": [{"request_id": h.request_id, "attempt": h.attempt} for h in held]},
                    timeout=max(interval, 1.0),
                )
            except (GatewayError, GatewayUnreachable) as err:
                log.warning("heartbeat failed: %s", err)
                continue
            by_id = {h.request_id: h for h in held}
            for entry in (answer or {}).get("requests", []):
                target = by_id.get(entry.get("request_id"))
                if target is None:
                    continue
                if entry.get("status") == "cancel":
                    self._stop_handler(target, "cancel")
                elif entry.get("status") == "lost":
                    self._abandon(target)

    def _refresh_token(self) -> None:
        if not token_refresh_due(self._client.token):
            return
        fresh = self._client.json("POST", "/runner/v1/token", {}, retry_for=5.0)
        self._client.token = fresh["token"]
        log.info("runner token refreshed")

    # --- output files ---

    def _upload(self, held: _Held, data: FileBody, content_type: str, file_name: str) -> dict:
        content_type = (content_type or "application/octet-stream").split(";")[0].strip() or "application/octet-stream"
        name = safe_file_name(file_name, content_type)
        if held.sync_mode:
            # fal's sync_mode: media comes back inline and is not kept in storage.
            raw = read_all(data)
            return {"url": f"data:{content_type};base64,{base64.b64encode(raw).decode()}", "content_type": content_type, "file_name": name, "file_size": len(raw)}
        if held.abandoned:
            raise Cancelled("The runner no longer holds this request")
        # The random part makes output URLs unguessable capabilities, like fal's CDN URLs.
        key = f"outputs/{held.request_id}/{secrets.token_urlsafe(9)}/{name}"
        stored = self._store_output(held, key, data, content_type, name)
        return {
            "url": f"{held.files_url}/files/{stored['key']}",
            "content_type": stored.get("content_type", content_type),
            "file_name": stored.get("file_name", name),
            "file_size": int(stored.get("size", 0)),
        }

    def _store_output(self, held: _Held, key: str, data: FileBody, content_type: str, name: str) -> dict:
        """Puts an output file into the gateway's storage under ``key``: ``{key, size, content_type,
        file_name}`` as stored."""
        headers = {
            "content-type": "application/octet-stream",
            "x-darkroom-content-type": content_type,
            "x-darkroom-file-name": name,
            "x-darkroom-runner-id": self.runner_id or "",
            "x-darkroom-attempt": str(held.attempt),
        }
        if held.output_ttl is not None:
            headers["x-darkroom-expires-in"] = str(held.output_ttl)
        body: Any
        if isinstance(data, (str, os.PathLike)):
            # A file on disk streams from it, and is reopened if the call must be retried.
            path = os.fspath(data)
            headers["content-length"] = str(os.path.getsize(path))
            body = lambda: open(path, "rb")  # noqa: E731
        else:
            body = read_all(data)
        try:
            res = self._client.request("PUT", "/runner/v1/files/" + "/".join(urllib.parse.quote(p, safe="") for p in key.split("/")), body=body, headers=headers, retry_for=30.0, timeout=600.0)
        except GatewayError as err:
            if err.lease_lost:
                self._abandon(held)
                raise Cancelled("The runner no longer holds this request") from err
            if err.status == 413:
                raise RunnerError("ERR_FILE_TOO_LARGE", str(err.detail)) from err
            raise RunnerError("ERR_INTERNAL", f"Uploading {name} failed: {err}") from err
        except GatewayUnreachable as err:
            raise RunnerError("ERR_INTERNAL", f"Uploading {name} failed: {err}") from err
        return res.json()
