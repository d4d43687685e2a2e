"""The runner the gateway's scheduler starts (ipc.py), driven here over a socket pair as the
scheduler drives it: hello and ready, runs answered with their events in order, output files sent
to the scheduler to store, cancellation, and drain."""

import base64
import json
import socket
import threading
import time
import unittest

from darkroom_runner import App
from darkroom_runner.ipc import IpcRunner


class Scheduler:
    """The scheduler's end of the socket: reads JSON lines, writes them."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.messages: list = []

    def send(self, message: dict) -> None:
        self.sock.sendall((json.dumps(message) + "\n").encode())

    def next(self, kind: str = None, timeout: float = 10.0) -> dict:
        self.sock.settimeout(timeout)
        while True:
            message = json.loads(self.reader.readline())
            self.messages.append(message)
            if kind is None or message["t"] == kind:
                return message


def run_message(request_id: str, endpoint: str = "", input: dict = None, **extra) -> dict:
    return {"t": "run", "requestId": request_id, "endpoint": endpoint, "input": input or {}, "attempt": 1, "baseUrl": "http://gw", **extra}


class IpcRunnerTest(unittest.TestCase):
    def setUp(self):
        app = App("demo/ipc", knobs={"max_multiplexing": 4})

        @app.endpoint("/")
        def echo(input, ctx):
            ctx.log("echoing")
            ctx.progress(1, 2)
            ctx.emit({"half": True})
            ctx.bill(3)
            return {"echo": input}

        @app.endpoint("/file")
        def file(input, ctx):
            return ctx.upload(b"\x89PNG fake", "image/png", "card.png")

        @app.endpoint("/slow")
        def slow(input, ctx):
            ctx.sleep(30)
            return {}

        ours, theirs = socket.socketpair()
        self.scheduler = Scheduler(ours)
        self.closed = threading.Event()
        self.runner = IpcRunner(app, theirs, runner_id="runner-test", on_closed=self.closed.set)
        self.runner.cancel_grace = 0.5
        self.runner.start()
        self.addCleanup(ours.close)

    def test_hello_and_ready_then_a_run_with_its_events_in_order_and_its_result(self):
        hello = self.scheduler.next()
        self.assertEqual((hello["t"], hello["appId"], hello["protocol"]), ("hello", "demo/ipc", 1))
        ready = self.scheduler.next()
        self.assertEqual(ready["t"], "ready")
        self.assertLessEqual(ready["phases"]["processStartedAt"], ready["phases"]["runtimeLoadedAt"])
        self.scheduler.send(run_message("r1", input={"a": 1}))
        result = self.scheduler.next("result")
        self.assertEqual(result, {"t": "result", "requestId": "r1", "output": {"echo": {"a": 1}}, "billableUnits": 3.0})
        events = [m for m in self.scheduler.messages if m.get("requestId") == "r1" and m["t"] != "result"]
        self.assertEqual([m["t"] for m in events], ["log", "progress", "partial"])
        self.assertEqual(events[1]["progress"], {"step": 1.0, "total": 2.0, "fraction": 0.5})

    def test_a_large_input_comes_as_its_json_text(self):
        self.scheduler.send({**run_message("r2"), "input": None, "inputJsonText": json.dumps({"big": "x" * 1000})})
        result = self.scheduler.next("result")
        self.assertEqual(len(result["output"]["echo"]["big"]), 1000)

    def test_an_output_file_goes_to_the_scheduler_and_its_url_comes_from_the_stored_key(self):
        self.scheduler.send(run_message("r3", "file"))
        put = self.scheduler.next("put_file")
        self.assertEqual(put["requestId"], "r3")
        self.assertTrue(put["key"].startswith("outputs/r3/") and put["key"].endswith("/card.png"), put["key"])
        self.assertEqual(base64.b64decode(put["data"]), b"\x89PNG fake")
        self.scheduler.send({"t": "file_stored", "callId": put["callId"], "key": put["key"], "size": 9, "contentType": "image/png", "fileName": "card.png"})
        result = self.scheduler.next("result")
        self.assertEqual(result["output"], {"url": f"http://gw/files/{put['key']}", "content_type": "image/png", "file_name": "card.png", "file_size": 9})

    def test_a_refused_file_fails_the_request_with_the_schedulers_error(self):
        self.scheduler.send(run_message("r4", "file"))
        put = self.scheduler.next("put_file")
        self.scheduler.send({"t": "file_failed", "callId": put["callId"], "error": {"code": "ERR_FILE_TOO_LARGE", "message": "too big"}})
        error = self.scheduler.next("error")
        self.assertEqual(error["error"]["code"], "ERR_FILE_TOO_LARGE")

    def test_cancel_stops_the_handler_and_reports_the_cancellation_once(self):
        self.scheduler.send(run_message("r5", "slow"))
        deadline = time.monotonic() + 5
        while "r5" not in self.runner.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        self.scheduler.send({"t": "cancel", "requestId": "r5"})
        error = self.scheduler.next("error")
        self.assertEqual(error["error"]["code"], "ERR_CLIENT_CANCELLED")
        self.assertLess(time.monotonic() - started, 2)

    def test_drain_finishes_what_is_held_then_the_runner_stops(self):
        self.scheduler.send(run_message("r6", input={"b": 2}))
        self.scheduler.send({"t": "drain"})
        result = self.scheduler.next("result")
        self.assertEqual(result["requestId"], "r6")
        self.assertTrue(self.runner._exit.wait(5), "the runner stopped after its last request")

    def test_the_scheduler_going_away_ends_the_runner(self):
        self.scheduler.next("ready")
        # As when the gateway's process ends: its end of the socket is gone.
        self.scheduler.sock.shutdown(socket.SHUT_RDWR)
        self.assertTrue(self.closed.wait(5))


if __name__ == "__main__":
    unittest.main()
