"""The runner against a scripted stand-in for a gateway: the cases the end-to-end test cannot stage
cheaply (a handler that ignores its cancellation, request_timeout, a lost lease, failover, token
refresh). The real gateway is exercised by test/python/python-runner.test.ts."""

import base64
import json
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from darkroom_runner import App, GatewayClient, GatewayError, GatewayUnreachable, Runner
from darkroom_runner.runner import safe_file_name, token_refresh_due


class FakeGateway:
    """Records every call; hands out the runs in `queue`; answers heartbeats from `heartbeat`."""

    def __init__(self, lease_ms=600, fail_with=None):
        self.calls = []
        self.queue = []
        self.heartbeat = {}
        self.lease_lost = set()
        self.forget_app = False
        self.fail_with = fail_with
        self.lock = threading.Lock()
        self.lease_ms = lease_ms
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                if status == 409:
                    self.send_header("x-fal-error-type", "lease_lost")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                data = self.rfile.read(int(self.headers["content-length"]))
                with gateway.lock:
                    gateway.calls.append(("PUT", self.path, {"headers": dict(self.headers), "body": data}))
                key = self.path[len("/runner/v1/files/"):]
                self._answer(200, {"key": key, "size": len(data), "content_type": self.headers["x-darkroom-content-type"], "file_name": self.headers["x-darkroom-file-name"]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with gateway.lock:
                    gateway.calls.append(("POST", self.path, body, self.headers.get("authorization")))
                if gateway.fail_with:
                    return self._answer(gateway.fail_with, {"detail": "down"})
                if self.path == "/runner/v1/register":
                    gateway.forget_app = False
                    return self._answer(200, {"protocol": 1, "runner_id": "rr-testtesttest", "lease_ms": gateway.lease_ms, "heartbeat_ms": gateway.lease_ms // 3, "poll_wait_ms": 30000, "knobs": {"request_timeout": 1, "max_multiplexing": 2}})
                if self.path == "/runner/v1/lease" and gateway.forget_app:
                    # A gateway that restarted without the app: 404 until the runner registers again.
                    return self._answer(404, {"detail": "Unknown app", "error_type": "not_found"})
                if self.path == "/runner/v1/lease":
                    deadline = time.monotonic() + min(body["wait_ms"], 200) / 1000
                    while time.monotonic() < deadline:
                        with gateway.lock:
                            if gateway.queue:
                                runs, gateway.queue = gateway.queue[: body["slots"]], gateway.queue[body["slots"]:]
                                return self._answer(200, {"runs": runs})
                        time.sleep(0.01)
                    return self._answer(200, {"runs": []})
                if self.path == "/runner/v1/heartbeat":
                    return self._answer(200, {"lease_ms": gateway.lease_ms, "requests": [{"request_id": r["request_id"], "status": gateway.heartbeat.get(r["request_id"], "ok")} for r in body["requests"]]})
                if self.path == "/runner/v1/token":
                    return self._answer(200, {"token": "fresh-token", "expires_at": "2030-01-01T00:00:00Z"})
                request_id = self.path.split("/")[4]
                if request_id in gateway.lease_lost:
                    return self._answer(409, {"detail": "lost", "error_type": "lease_lost"})
                if self.path.endswith("/events"):
                    return self._answer(204)
                return self._answer(200, {"state": "SUCCEEDED"})

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a runner breaking its own long poll on stop() is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def run(self, request_id, input, endpoint="", attempt=1, **extra):
        with self.lock:
            self.queue.append({"request_id": request_id, "endpoint": endpoint, "input": input, "attempt": attempt, "base_url": "http://public", "sync_mode": False, "cancel_requested": False, **extra})

    def reports(self, request_id):
        with self.lock:
            return [(c[1].rsplit("/", 1)[1], c[2]) for c in self.calls if c[0] == "POST" and f"/requests/{request_id}/" in c[1]]

    def outcome(self, request_id, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for kind, body in self.reports(request_id):
                if kind in ("result", "error"):
                    return kind, body
            time.sleep(0.02)
        raise AssertionError(f"no outcome for {request_id}: {self.reports(request_id)}")


def make_app():
    app = App("demo/test")
    seen = {}

    @app.endpoint("/", input_schema={"type": "object", "properties": {"n": {"type": "integer", "default": 2}, "mode": {"type": "string", "default": "ok"}}})
    def handler(input, ctx):
        seen[ctx.request_id] = ctx
        if input["mode"] == "stubborn":
            time.sleep(1.5)  # ignores its cancellation
            return {"late": True}
        if input["mode"] == "wait":
            ctx.sleep(10)
        if input["mode"] == "boom":
            raise KeyError("missing thing")
        for i in range(input["n"]):
            ctx.log(f"line {i}")
            ctx.progress(i + 1, input["n"])
        file = ctx.upload(b"hello", "text/plain", "../he llo.txt")
        ctx.bill(3)
        return {"n": input["n"], "file": file, "attempt": ctx.attempt}

    return app, seen


class RunnerTest(unittest.TestCase):
    def setUp(self):
        self.gateway = FakeGateway()
        self.app, self.seen = make_app()
        self.runner = Runner(self.app, [self.gateway.url], "id:secret", cancel_grace=0.3)
        self.runner.start()

    def tearDown(self):
        self.runner.stop(grace=0.5)
        self.gateway.close()

    def test_events_then_one_result_with_the_uploaded_file(self):
        self.gateway.run("req-1", {"n": 3}, attempt=2)
        kind, body = self.gateway.outcome("req-1")
        self.assertEqual(kind, "result")
        self.assertEqual(body["attempt"], 2)
        self.assertEqual(body["billable_units"], 3)
        output = body["output"]
        self.assertEqual(output["n"], 3)
        self.assertEqual(output["attempt"], 2)
        self.assertRegex(output["file"]["url"], r"^http://public/files/outputs/req-1/[A-Za-z0-9_-]{12}/_he_llo.txt$")
        self.assertEqual(output["file"]["file_size"], 5)
        reports = self.gateway.reports("req-1")
        self.assertEqual([k for k, _ in reports][-1], "result")
        logs = [e["message"] for k, b in reports if k == "events" for e in b["events"] if e["type"] == "log"]
        self.assertEqual(logs, ["line 0", "line 1", "line 2"])
        progress = [e for k, b in reports if k == "events" for e in b["events"] if e["type"] == "progress"]
        self.assertEqual(progress[-1]["step"], 3)
        put = [c for c in self.gateway.calls if c[0] == "PUT"][0]
        self.assertEqual(put[2]["body"], b"hello")
        self.assertEqual(put[2]["headers"]["x-darkroom-attempt"], "2")
        self.assertEqual(put[2]["headers"]["x-darkroom-runner-id"], "rr-testtesttest")
        self.assertEqual(put[2]["headers"]["x-darkroom-content-type"], "text/plain")
        # An admin key is sent as fal's `Key`.
        self.assertEqual(self.gateway.calls[0][3], "Key id:secret")

    def test_output_urls_go_on_the_files_url_when_the_gateway_sends_one(self):
        self.gateway.run("req-files", {"n": 0}, files_url="http://files.example/")
        kind, body = self.gateway.outcome("req-files")
        self.assertEqual(kind, "result")
        self.assertRegex(body["output"]["file"]["url"], r"^http://files\.example/files/outputs/req-files/[A-Za-z0-9_-]{12}/_he_llo.txt$")

    def test_an_exception_is_an_app_error_after_its_traceback(self):
        self.gateway.run("req-2", {"mode": "boom"})
        kind, body = self.gateway.outcome("req-2")
        self.assertEqual((kind, body["error"]["code"]), ("error", "ERR_APP_ERROR"))
        self.assertIn("missing thing", body["error"]["message"])
        logs = [e for k, b in self.gateway.reports("req-2") if k == "events" for e in b["events"]]
        self.assertEqual(logs[-1]["level"], "ERROR")
        self.assertIn("KeyError", logs[-1]["message"])

    def test_invalid_input_and_unknown_paths(self):
        self.gateway.run("req-3", {"n": "many"})
        self.gateway.run("req-4", {}, endpoint="nope")
        kind, body = self.gateway.outcome("req-3")
        self.assertEqual(body["error"]["code"], "ERR_VALIDATION")
        self.assertEqual(body["error"]["field_errors"][0]["loc"], ["body", "n"])
        kind, body = self.gateway.outcome("req-4")
        self.assertEqual(body["error"]["code"], "ERR_PATH_NOT_FOUND")

    def test_a_cancel_from_the_heartbeat_stops_the_handler(self):
        self.gateway.heartbeat["req-5"] = "cancel"
        self.gateway.run("req-5", {"mode": "wait"})
        kind, body = self.gateway.outcome("req-5")
        self.assertEqual(body["error"]["code"], "ERR_CLIENT_CANCELLED")
        self.assertTrue(self.seen["req-5"].cancelled.is_set())

    def test_a_handler_that_ignores_its_cancellation_is_reported_after_the_grace(self):
        self.gateway.run("req-6", {"mode": "stubborn"}, cancel_requested=True)
        started = time.monotonic()
        kind, body = self.gateway.outcome("req-6")
        self.assertEqual(body["error"]["code"], "ERR_CLIENT_CANCELLED")
        self.assertLess(time.monotonic() - started, 1.4)
        time.sleep(0.5)
        # The late return is dropped: one outcome.
        self.assertEqual([k for k, _ in self.gateway.reports("req-6") if k in ("result", "error")], ["error"])

    def test_request_timeout_from_the_registration(self):
        self.gateway.run("req-7", {"mode": "wait"})
        kind, body = self.gateway.outcome("req-7", timeout=4)
        self.assertEqual(body["error"]["code"], "ERR_REQUEST_TIMEOUT")
        self.assertIn("request_timeout (1 s)", body["error"]["message"])

    def test_a_lost_lease_is_abandoned_without_an_outcome(self):
        self.gateway.heartbeat["req-8"] = "lost"
        self.gateway.run("req-8", {"mode": "wait"})
        deadline = time.monotonic() + 3
        while "req-8" not in self.seen or not self.seen["req-8"].cancelled.is_set():
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        time.sleep(0.3)
        self.assertEqual([k for k, _ in self.gateway.reports("req-8") if k in ("result", "error")], [])
        self.assertNotIn("req-8", self.runner.in_flight)

    def test_lease_lost_on_report_is_not_retried(self):
        self.gateway.lease_lost.add("req-9")
        self.gateway.run("req-9", {"n": 1})
        time.sleep(0.5)
        kinds = [k for k, _ in self.gateway.reports("req-9")]
        self.assertEqual(kinds.count("events"), 1)
        self.assertNotIn("result", kinds)

    def test_drain_hands_unfinished_requests_back(self):
        self.gateway.run("req-10", {"mode": "wait"})
        deadline = time.monotonic() + 3
        while "req-10" not in self.seen:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        self.runner.stop(grace=0.2)
        kind, body = self.gateway.outcome("req-10")
        self.assertEqual(body["error"]["code"], "ERR_RUNNER_DISCONNECTED")


    def test_a_gateway_that_forgot_the_app_gets_it_registered_again(self):
        self.gateway.forget_app = True
        time.sleep(0.5)
        self.gateway.run("req-11", {"n": 1})
        kind, _ = self.gateway.outcome("req-11")
        self.assertEqual(kind, "result")
        registrations = [c for c in self.gateway.calls if c[1] == "/runner/v1/register"]
        self.assertEqual(len(registrations), 2)
        # The same runner id: its leases and the gateway's view of it carry over.
        self.assertEqual(registrations[1][2]["runner_id"], "rr-testtesttest")
        self.assertEqual(registrations[1][2]["app"]["id"], "demo/test")


class FailoverTest(unittest.TestCase):
    def test_a_failing_gateway_is_left_for_the_next(self):
        down = FakeGateway(fail_with=503)
        up = FakeGateway()
        try:
            switched = []
            client = GatewayClient(["http://127.0.0.1:1", down.url, up.url], "t", on_switch=switched.append)
            answer = client.json("POST", "/runner/v1/heartbeat", {"requests": []}, retry_for=5)
            self.assertEqual(answer["requests"], [])
            self.assertEqual(client.gateway, up.url)
            self.assertEqual(switched, [down.url, up.url])
            self.assertEqual(client.token, "t")
            self.assertEqual(up.calls[0][3], "Bearer t")
        finally:
            down.close()
            up.close()

    def test_refusals_raise_at_once_and_unreachable_after_the_deadline(self):
        gateway = FakeGateway()
        gateway.lease_lost.add("x")
        try:
            client = GatewayClient([gateway.url], "t")
            with self.assertRaises(GatewayError) as caught:
                client.json("POST", "/runner/v1/requests/x/result", {}, retry_for=5)
            self.assertTrue(caught.exception.lease_lost)
        finally:
            gateway.close()
        started = time.monotonic()
        with self.assertRaises(GatewayUnreachable):
            GatewayClient(["http://127.0.0.1:1"], "t").json("POST", "/x", {}, retry_for=0.5)
        self.assertLess(time.monotonic() - started, 2)


def jwt(iat, exp):
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'iat': iat, 'exp': exp})}.sig"


class PureTest(unittest.TestCase):
    def test_token_refresh_in_the_last_third(self):
        self.assertFalse(token_refresh_due(jwt(0, 300), now=199))
        self.assertTrue(token_refresh_due(jwt(0, 300), now=200))
        self.assertFalse(token_refresh_due("id:secret"))
        self.assertFalse(token_refresh_due("a.b.c"))

    def test_token_refresh_through_the_gateway(self):
        gateway = FakeGateway()
        try:
            app, _ = make_app()
            runner = Runner(app, [gateway.url], jwt(0, 1), cancel_grace=0.3)
            runner._refresh_token()
            self.assertEqual(runner._client.token, "fresh-token")
            self.assertEqual(runner._lease_client.token, "fresh-token")
        finally:
            gateway.close()

    def test_safe_file_names(self):
        self.assertEqual(safe_file_name("../a b.png", "image/png"), "_a_b.png")
        self.assertEqual(safe_file_name("", "image/png"), "output.png")
        self.assertEqual(safe_file_name("", "application/x-unknown"), "output.bin")
        self.assertEqual(len(safe_file_name("x" * 300, "text/plain")), 100)


if __name__ == "__main__":
    unittest.main()
