"""The GPU example (examples/diffusers_text_to_image.py), a fal app: it must import and describe itself
where torch and diffusers are missing, and its handler keeps fal's shapes, reports progress per
denoising step and stops at the next step when cancelled (torch and the pipeline faked here)."""

import importlib.util
import json
import os
import subprocess
import sys
import unittest

try:
    import pydantic  # noqa: F401

    from darkroom_runner.context import Context
    from darkroom_runner.errors import Cancelled
    from fal import _context

    HAVE_PYDANTIC = True
except ImportError:
    HAVE_PYDANTIC = False

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")
EXAMPLE = os.path.join(EXAMPLES, "diffusers_text_to_image.py")


def _load_example():
    sys.path.insert(0, EXAMPLES)
    try:
        import diffusers_text_to_image as t2i
    finally:
        sys.path.remove(EXAMPLES)
    return t2i


@unittest.skipUnless(HAVE_PYDANTIC, "fal apps need pydantic (Debian: python3-pydantic)")
class DiffusersManifestTest(unittest.TestCase):
    def test_manifest_builds_without_torch_and_lists_what_is_missing(self):
        # A fresh interpreter in which importing torch or diffusers fails, whatever is installed.
        code = (
            "import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'diffusers', 'transformers'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from darkroom_runner.__main__ import main\n"
            f"sys.exit(main(['--app', {EXAMPLE + '::TextToImage'!r}, '--manifest']))\n"
        )
        env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        manifest = json.loads(done.stdout)
        self.assertEqual(manifest["id"], "darkroom-py/text-to-image")
        self.assertEqual(manifest["metadata"]["num_gpus"], 1)
        self.assertIn("torch", manifest["metadata"]["requirements"])
        self.assertEqual((manifest["knobs"]["max_multiplexing"], manifest["knobs"]["keep_alive"], manifest["knobs"]["request_timeout"]), (1, 600, 600))
        root = manifest["endpoints"][0]
        self.assertEqual(root["path"], "")
        fields = root["input"]["properties"]
        for name in ("prompt", "negative_prompt", "image_size", "num_inference_steps", "guidance_scale", "seed", "num_images", "enable_safety_checker", "output_format", "sync_mode"):
            self.assertIn(name, fields)
        self.assertEqual(fields["output_format"]["enum"], ["jpeg", "png"])
        self.assertEqual(root["input"]["required"], ["prompt"])
        self.assertIn("images", root["output"]["properties"])
        if importlib.util.find_spec("torch") is None:
            self.assertIn("torch", manifest["unavailable"]["reason"])
            self.assertTrue(manifest["unavailable"]["remedy"].startswith("pip install "), manifest["unavailable"])

    def test_image_size_presets_custom_sizes_and_validation(self):
        t2i = _load_example()
        self.assertEqual(t2i.image_dimensions("landscape_4_3"), (1024, 768))
        self.assertEqual(t2i.image_dimensions("portrait_16_9"), (576, 1024))
        self.assertEqual(t2i.image_dimensions({"width": 500, "height": 300}), (496, 288))
        value = t2i.TextToImageInput(prompt="a cat", image_size={"width": 640})
        self.assertEqual(t2i.image_dimensions(value.image_size), (640, 512))
        self.assertEqual(value.num_images, 1)
        with self.assertRaises(pydantic.ValidationError):
            t2i.TextToImageInput(prompt="a cat", image_size="huge")
        with self.assertRaises(pydantic.ValidationError):
            t2i.TextToImageInput(prompt="a cat", num_images=5)


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
    """What fal.toolkit.Image.from_pil reads of a PIL image."""

    mode = "RGB"

    def __init__(self, width, height):
        self.width, self.height = width, height

    def save(self, buffer, format, **_):
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


@unittest.skipUnless(HAVE_PYDANTIC, "fal apps need pydantic (Debian: python3-pydantic)")
class DiffusersHandlerTest(unittest.TestCase):
    def setUp(self):
        self.t2i = _load_example()
        self.app = self.t2i.TextToImage()
        self.app.torch = _FakeTorch
        self.events = []
        self.uploads = []

        def upload(data, content_type, name):
            self.uploads.append((data, content_type, name))
            return {"url": f"http://gw/files/{name}", "content_type": content_type, "file_name": name, "file_size": len(data)}

        self.ctx = Context(request_id="r1", attempt=1, endpoint="", state=None, sync_mode=False, send_event=self.events.append, upload=upload)

    def generate(self, **given):
        with _context.serving(self.ctx):
            return self.app.generate(self.t2i.TextToImageInput(**given))

    def test_fal_output_shape_progress_per_step_and_billing(self):
        self.app.pipe = _FakePipe()
        output = self.generate(prompt="a cat", image_size="portrait_4_3", num_images=2, seed=7, num_inference_steps=3, output_format="png", enable_safety_checker=False)
        call = self.app.pipe.calls[0]
        self.assertEqual((call["width"], call["height"], call["num_images_per_prompt"], call["num_inference_steps"]), (768, 1024, 2, 3))
        self.assertEqual(call["generator"].seed, 7)
        self.assertEqual([i.url for i in output.images], ["http://gw/files/image-0.png", "http://gw/files/image-1.png"])
        self.assertEqual({(i.width, i.height, i.content_type) for i in output.images}, {(768, 1024, "image/png")})
        self.assertEqual(self.uploads[0][0], b"PNG:768x1024")
        self.assertEqual((output.seed, output.prompt), (7, "a cat"))
        self.assertIsInstance(output.timings.inference, float)
        self.assertIsNone(output.has_nsfw_concepts)
        progress = [(e["step"], e["total"]) for e in self.events if e["type"] == "progress"]
        self.assertEqual(progress, [(1, 3), (2, 3), (3, 3)])
        self.assertEqual(self.ctx.billable_units, 768 * 1024 * 2 / 1_000_000)

    def test_a_seed_is_chosen_and_returned_and_jpeg_is_the_default(self):
        self.app.pipe = _FakePipe()
        output = self.generate(prompt="a cat", enable_safety_checker=False)
        self.assertEqual(output.seed, self.app.pipe.calls[0]["generator"].seed)
        self.assertEqual(output.images[0].content_type, "image/jpeg")
        self.assertTrue(output.images[0].file_name.endswith(".jpg"))

    def test_the_safety_checker_verdicts_are_returned(self):
        self.app.pipe = _FakePipe()
        self.app.safety_check = lambda images: [True for _ in images]
        output = self.generate(prompt="a cat", num_images=2)
        self.assertEqual(output.has_nsfw_concepts, [True, True])

    def test_a_cancellation_interrupts_the_pipeline_at_the_next_step(self):
        self.app.pipe = _FakePipe(cancel_at=1, ctx=self.ctx)
        with self.assertRaises(Cancelled):
            self.generate(prompt="a cat", num_inference_steps=4)
        self.assertEqual(self.app.pipe.steps_run, 2)
        self.assertEqual(self.uploads, [])

    def test_without_darkroom_the_hooks_are_skipped(self):
        # On fal there is no Darkroom request context: the handler runs without progress or billing.
        self.app.pipe = _FakePipe()
        self.t2i._request = lambda: None
        output = self.generate(prompt="a cat", enable_safety_checker=False, num_inference_steps=2)
        self.assertEqual(len(output.images), 1)
        self.assertEqual([e for e in self.events if e["type"] == "progress"], [])
        self.assertIsNone(self.ctx.billable_units)


if __name__ == "__main__":
    unittest.main()
