import os
import subprocess
import sys
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

    def test_instantiates_a_lone_app_subclass(self):
        app = load_app(os.path.join(EXAMPLES, "diffusers_text_to_image.py"))
        self.assertEqual(type(app).__name__, "TextToImage")


class DiffusersExampleTest(unittest.TestCase):
    """The GPU example must import and describe itself where torch and diffusers are missing."""

    def test_manifest_builds_without_torch(self):
        # A fresh interpreter in which importing torch or diffusers fails, whatever is installed.
        code = (
            "import sys, json\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'diffusers', 'transformers'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from darkroom_runner.__main__ import main\n"
            f"sys.exit(main(['--app', {os.path.join(EXAMPLES, 'diffusers_text_to_image.py')!r}, '--manifest']))\n"
        )
        env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        import json

        manifest = json.loads(done.stdout)
        self.assertEqual(manifest["metadata"]["category"], "text-to-image")
        self.assertEqual(manifest["knobs"]["max_multiplexing"], 1)
        root = manifest["endpoints"][0]
        self.assertEqual(root["path"], "")
        fields = root["input"]["properties"]
        for name in ("prompt", "negative_prompt", "image_size", "num_inference_steps", "guidance_scale", "seed", "num_images", "enable_safety_checker", "output_format", "sync_mode"):
            self.assertIn(name, fields)
        self.assertEqual(fields["output_format"]["enum"], ["jpeg", "png"])
        self.assertEqual(root["input"]["required"], ["prompt"])
        self.assertIn("images", root["output"]["properties"])

    def test_image_size_presets_and_custom_sizes(self):
        sys.path.insert(0, EXAMPLES)
        try:
            import diffusers_text_to_image as t2i
        finally:
            sys.path.remove(EXAMPLES)
        self.assertEqual(t2i.image_dimensions("landscape_4_3"), (1024, 768))
        self.assertEqual(t2i.image_dimensions("portrait_16_9"), (576, 1024))
        self.assertEqual(t2i.image_dimensions({"width": 500, "height": 300}), (496, 288))
        from darkroom_runner import validate

        value, errors = validate(t2i.INPUT_SCHEMA, {"prompt": "a cat", "image_size": {"width": 640}})
        self.assertEqual(errors, [])
        self.assertEqual(value["image_size"], {"width": 640, "height": 512})
        self.assertEqual(value["num_images"], 1)
        _, errors = validate(t2i.INPUT_SCHEMA, {"prompt": "a cat", "image_size": "huge"})
        self.assertTrue(errors)


class _FakeTorch:
    """Just what the handler touches of torch."""

    class Generator:
        def __init__(self, device):
            self.device = device
            self.seed = None

        def manual_seed(self, seed):
            self.seed = seed
            return self

    class inference_mode:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False


class _FakeImage:
    def __init__(self, width, height):
        self.width, self.height = width, height

    def save(self, buffer, format, quality=None):
        buffer.write(f"{format}:{self.width}x{self.height}".encode())


class _FakePipe:
    """Calls the step callback the way diffusers does, honouring `_interrupt`."""

    def __init__(self, cancel_at=None, ctx=None):
        self.calls = []
        self._interrupt = False
        self.cancel_at = cancel_at
        self.ctx = ctx
        self.steps_run = 0

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        self._interrupt = False
        for step in range(kwargs["num_inference_steps"]):
            if self._interrupt:
                continue
            self.steps_run += 1
            if self.cancel_at == step:
                self.ctx.cancelled.set()
            kwargs["callback_on_step_end"](self, step, 1000 - step, {})

        class Result:
            images = [_FakeImage(kwargs["width"], kwargs["height"]) for _ in range(kwargs["num_images_per_prompt"])]

        return Result()


class DiffusersHandlerTest(unittest.TestCase):
    """The example's handler with torch and the pipeline faked: fal's shapes, progress, cancellation."""

    def setUp(self):
        sys.path.insert(0, EXAMPLES)
        try:
            import diffusers_text_to_image as t2i
        finally:
            sys.path.remove(EXAMPLES)
        from darkroom_runner import validate
        from darkroom_runner.context import Context

        self.t2i = t2i
        self.app = t2i.TextToImage()
        self.app.torch = _FakeTorch
        self.events = []
        self.uploads = []

        def upload(data, content_type, name):
            self.uploads.append((data, content_type, name))
            return {"url": f"http://gw/files/{name}", "content_type": content_type, "file_name": name, "file_size": len(data)}

        self.ctx = Context(request_id="r1", attempt=1, endpoint="", state=None, sync_mode=False, send_event=self.events.append, upload=upload)
        self.input = lambda **given: validate(t2i.INPUT_SCHEMA, given)[0]

    def test_fal_output_shape_and_progress_per_step(self):
        self.app.pipe = _FakePipe()
        output = self.app.generate(self.input(prompt="a cat", image_size="portrait_4_3", num_images=2, seed=7, num_inference_steps=3, output_format="png", enable_safety_checker=False), self.ctx)
        call = self.app.pipe.calls[0]
        self.assertEqual((call["width"], call["height"], call["num_images_per_prompt"], call["num_inference_steps"]), (768, 1024, 2, 3))
        self.assertEqual(call["generator"].seed, 7)
        self.assertEqual([i["url"] for i in output["images"]], ["http://gw/files/image-0.png", "http://gw/files/image-1.png"])
        self.assertEqual({(i["width"], i["height"], i["content_type"]) for i in output["images"]}, {(768, 1024, "image/png")})
        self.assertEqual(self.uploads[0][0], b"PNG:768x1024")
        self.assertEqual((output["seed"], output["prompt"]), (7, "a cat"))
        self.assertIsInstance(output["timings"]["inference"], float)
        self.assertNotIn("has_nsfw_concepts", output)
        progress = [(e["step"], e["total"]) for e in self.events if e["type"] == "progress"]
        self.assertEqual(progress, [(1, 3), (2, 3), (3, 3)])
        self.assertEqual(self.ctx.billable_units, 768 * 1024 * 2 / 1_000_000)

    def test_a_seed_is_chosen_and_returned_and_jpeg_is_the_default(self):
        self.app.pipe = _FakePipe()
        output = self.app.generate(self.input(prompt="a cat", enable_safety_checker=False), self.ctx)
        self.assertEqual(output["seed"], self.app.pipe.calls[0]["generator"].seed)
        self.assertEqual(output["images"][0]["content_type"], "image/jpeg")
        self.assertTrue(output["images"][0]["file_name"].endswith(".jpg"))

    def test_the_safety_checker_verdicts_are_returned(self):
        self.app.pipe = _FakePipe()
        self.app.safety_check = lambda images, ctx: [True for _ in images]
        output = self.app.generate(self.input(prompt="a cat", num_images=2), self.ctx)
        self.assertEqual(output["has_nsfw_concepts"], [True, True])

    def test_a_cancellation_interrupts_the_pipeline_at_the_next_step(self):
        self.app.pipe = _FakePipe(cancel_at=1, ctx=self.ctx)
        with self.assertRaises(Cancelled):
            self.app.generate(self.input(prompt="a cat", num_inference_steps=4), self.ctx)
        self.assertEqual(self.app.pipe.steps_run, 2)
        self.assertEqual(self.uploads, [])


if __name__ == "__main__":
    unittest.main()
