import os
import tempfile
import unittest

from darkroom_runner import App, Cancelled, RunnerError, endpoint, field_error
from darkroom_runner.__main__ import load_app
from darkroom_runner.app import DEFAULT_KNOBS

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")


class DecoratorStyleTest(unittest.TestCase):
    def test_manifest_carries_endpoints_knobs_and_metadata(self):
        app = App("demo/echo", version="1.2.3", knobs={"max_multiplexing": 4}, metadata={"display_name": "Echo", "category": "other", "description": "d", "unknown": 1})

        @app.endpoint("/", input_schema={"type": "object", "properties": {"a": {"type": "string"}}}, output_schema={"type": "object"}, description="root")
        def root(input, ctx):
            return input

        @app.endpoint("/v2/edit")
        def edit(input, ctx):
            return {}

        manifest = app.manifest()
        self.assertEqual(manifest["id"], "demo/echo")
        self.assertEqual(manifest["version"], "1.2.3")
        self.assertEqual(manifest["knobs"], {**DEFAULT_KNOBS, "max_multiplexing": 4})
        self.assertEqual(manifest["metadata"], {"display_name": "Echo", "category": "other", "description": "d"})
        self.assertEqual([e["path"] for e in manifest["endpoints"]], ["", "v2/edit"])
        self.assertEqual(manifest["endpoints"][0]["description"], "root")
        self.assertEqual(manifest["endpoints"][1]["input"], {"type": "object"})
        self.assertIs(app.endpoints[""].handler, root)

    def test_setup_decorator_result_becomes_the_state(self):
        app = App("demo/s")

        @app.setup
        def load():
            return {"model": 42}

        app.run_setup()
        self.assertEqual(app.state, {"model": 42})

    def test_bad_declarations_are_refused(self):
        with self.assertRaises(ValueError):
            App("NoSlash")
        with self.assertRaises(ValueError):
            App("demo/x", knobs={"gpus": 1})
        app = App("demo/x")
        with self.assertRaises(ValueError):
            app.manifest()  # no endpoints
        app.endpoint("/")(lambda i, c: i)
        with self.assertRaises(ValueError):
            app.endpoint("/")(lambda i, c: {})
        with self.assertRaises(ValueError):
            app.endpoint("/ws", kind="websocket")
        app.endpoint("/rt", kind="realtime")(lambda i, c: i)
        self.assertEqual([e["kind"] for e in app.manifest()["endpoints"] if e["path"] == "rt"], ["realtime"])


class SubclassStyleTest(unittest.TestCase):
    def test_methods_marked_with_endpoint_are_bound(self):
        class Upper(App):
            id = "demo/upper"
            knobs = {"request_timeout": 10}
            metadata = {"category": "text"}

            def setup(self):
                self.suffix = "!"

            @endpoint("/", input_schema={"type": "object"})
            def shout(self, input, ctx):
                return {"text": input["text"].upper() + self.suffix}

        app = Upper()
        app.run_setup()
        self.assertEqual(app.endpoints[""].handler({"text": "hi"}, None), {"text": "HI!"})
        manifest = app.manifest()
        self.assertEqual(manifest["knobs"]["request_timeout"], 10)
        self.assertEqual(manifest["metadata"]["display_name"], "demo/upper")
        # Class attributes are defaults, not shared state.
        self.assertEqual(App.knobs, {})


class ErrorsTest(unittest.TestCase):
    def test_field_error_is_a_validation_error_in_fal_shape(self):
        err = field_error(["images", 0, "url"], "must be a URL")
        self.assertEqual(err.to_wire(), {"code": "ERR_VALIDATION", "message": "must be a URL", "field_errors": [{"loc": ["body", "images", 0, "url"], "msg": "must be a URL", "type": "value_error"}]})

    def test_cancelled_is_a_client_cancellation(self):
        self.assertEqual(Cancelled().code, "ERR_CLIENT_CANCELLED")
        self.assertEqual(RunnerError("ERR_APP_UNAVAILABLE", "busy", status=503).to_wire(), {"code": "ERR_APP_UNAVAILABLE", "message": "busy", "status": 503})


class LoadAppTest(unittest.TestCase):
    def test_loads_a_file_with_or_without_the_attribute(self):
        path = os.path.join(EXAMPLES, "echo_app.py")
        self.assertEqual(load_app(path).id, "examples/python-echo")
        self.assertEqual(load_app(f"{path}:app").id, "examples/python-echo")

    def test_an_owner_name_given_as_id_is_the_apps_id_as_in_fals_command_lines(self):
        import contextlib
        import io
        import json

        from darkroom_runner.__main__ import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(main(["--app", os.path.join(EXAMPLES, "echo_app.py"), "--id", "acme/echo-copy", "--manifest"]), 0)
        self.assertEqual(json.loads(out.getvalue())["id"], "acme/echo-copy")

    def test_instantiates_a_lone_app_subclass(self):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "lone_app.py")
            with open(path, "w") as f:
                f.write(
                    "from darkroom_runner import App, endpoint\n"
                    "class Upper(App):\n"
                    "    id = 'demo/upper'\n"
                    "    @endpoint('/')\n"
                    "    def upper(self, input, ctx):\n"
                    "        return input\n"
                )
            app = load_app(path)
        self.assertEqual((type(app).__name__, app.id), ("Upper", "demo/upper"))


if __name__ == "__main__":
    unittest.main()
