"""The ``fal`` package: a fal app class turned into a Darkroom app, without a gateway."""

# No `from __future__ import annotations`: the models are defined inside the tests, where only
# real annotation objects (not names) can be resolved.

import asyncio
import base64
import io
import logging
import os
import struct
import tempfile
import unittest
import zlib
from typing import Optional

try:
    import pydantic
    from pydantic import BaseModel, Field

    import fal
    from fal import toolkit
    from fal.app import default_app_id, to_darkroom_app
except ImportError:  # pragma: no cover - the suite needs pydantic
    pydantic = None  # type: ignore[assignment]

from darkroom_runner.context import Context
from darkroom_runner.errors import RunnerError
from darkroom_runner.schema import validate


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class FakeRequest:
    """What a Context needs from the runner: the events it sends and the files it stores."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.stored: list[tuple[bytes, str, str]] = []

    def context(self) -> Context:
        def upload(data: bytes, content_type: str, file_name: str) -> dict:
            self.stored.append((bytes(data), content_type, file_name))
            return {"url": f"http://gw/files/{len(self.stored)}", "content_type": content_type, "file_name": file_name or "file", "file_size": len(data)}

        return Context(request_id="req-1", attempt=1, endpoint="", state=None, sync_mode=False, send_event=self.events.append, upload=upload)

    def logs(self) -> list[tuple[str, str]]:
        return [(e["level"], e["message"]) for e in self.events if e["type"] == "log"]


@unittest.skipIf(pydantic is None, "pydantic is not installed")
class FalAppTest(unittest.TestCase):
    def test_class_keywords_and_attributes_become_knobs_keywords_winning(self) -> None:
        class Base(fal.App, keep_alive=10):
            request_timeout = 50

            @fal.endpoint("/")
            def run(self) -> None:
                return None

        class Tuned(Base, max_concurrency=3, min_concurrency=1, keep_alive=30, kind="container"):
            max_multiplexing = 4
            machine_type = "GPU-A100"

        app = to_darkroom_app(Tuned)
        self.assertEqual(app.knobs, {"keep_alive": 30, "request_timeout": 50, "max_runners": 3, "min_runners": 1, "max_multiplexing": 4})
        self.assertEqual(app.fal_options["machine_type"], "GPU-A100")
        self.assertNotIn("kind", app.fal_options, "options without a meaning here are left out")
        self.assertEqual(app.manifest()["metadata"]["machine_type"], "GPU-A100")
        self.assertIsNone(app.unavailable)

    def test_missing_requirements_make_the_app_unavailable_with_a_remedy(self) -> None:
        class Heavy(fal.App):
            requirements = ["pydantic", "darkroom-surely-missing-package>=2.0", "another_missing[extra]==1"]

            @fal.endpoint("/")
            def run(self) -> None:
                return None

        app = to_darkroom_app(Heavy)
        manifest = app.manifest()
        self.assertEqual(manifest["metadata"]["requirements"], Heavy.requirements)
        self.assertIn("darkroom-surely-missing-package>=2.0", manifest["unavailable"]["reason"])
        self.assertNotIn("pydantic,", manifest["unavailable"]["reason"], "an installed one is not listed")
        self.assertEqual(manifest["unavailable"]["remedy"], "pip install 'darkroom-surely-missing-package>=2.0' 'another_missing[extra]==1'")

    def test_app_ids(self) -> None:
        class MyImageApp(fal.App):
            @fal.endpoint("/")
            def run(self) -> None:
                return None

        class Named(fal.App, app_name="acme/cards"):
            @fal.endpoint("/")
            def run(self) -> None:
                return None

        class Plain(fal.App):
            app_name = "Text Cards"

            @fal.endpoint("/")
            def run(self) -> None:
                return None

        self.assertEqual(default_app_id(MyImageApp), "local/my-image-app")
        self.assertEqual(default_app_id(Named), "acme/cards")
        self.assertEqual(default_app_id(Plain), "local/text-cards")
        self.assertEqual(to_darkroom_app(MyImageApp, "team/other").id, "team/other")

    def test_schemas_validation_output_logs_and_files(self) -> None:
        class Size(BaseModel):
            width: int = Field(default=8, ge=1, le=64)
            height: int = Field(default=8, ge=1, le=64)

        class Input(BaseModel):
            prompt: str = Field(min_length=1, description="What to draw")
            size: Size = Size()
            repeat: int = Field(default=1, ge=1, le=3)

        class Output(BaseModel):
            prompt: str
            image: toolkit.Image
            attachment: Optional[toolkit.File] = None

        class Drawer(fal.App):
            def setup(self) -> None:
                self.ready = True

            @fal.endpoint("/")
            def draw(self, input: Input) -> Output:
                if input.prompt == "boom":
                    raise ValueError("exploded")
                print("drawing", input.prompt)
                logging.getLogger("drawer").warning("careful with %s", input.prompt)
                with tempfile.TemporaryDirectory() as folder:
                    note = os.path.join(folder, "note.txt")
                    with open(note, "w") as f:
                        f.write(input.prompt * input.repeat)
                    attachment = toolkit.File.from_path(note)
                return Output(prompt=input.prompt, image=toolkit.Image.from_bytes(_png(input.size.width, input.size.height)), attachment=attachment)

        app = to_darkroom_app(Drawer)
        app.run_setup()
        endpoint = app.endpoints[""]
        schema = endpoint.input_schema
        self.assertEqual(schema["required"], ["prompt"])
        self.assertEqual(schema["properties"]["prompt"]["description"], "What to draw")
        self.assertIn("Size", schema["$defs"], "nested models under $defs, whatever pydantic's version")
        self.assertNotIn("definitions", schema)
        self.assertIn("image", endpoint.output_schema["properties"])

        # The runner validates against the schema first (filling defaults), then pydantic.
        value, errors = validate(schema, {"prompt": "cat", "size": {"width": 5, "height": 3}, "repeat": 2})
        self.assertEqual(errors, [])
        request = FakeRequest()
        out = endpoint.handler(value, request.context())
        self.assertEqual(out["prompt"], "cat")
        self.assertEqual((out["image"]["width"], out["image"]["height"]), (5, 3), "the size read from the PNG")
        self.assertEqual(out["image"]["content_type"], "image/png")
        self.assertEqual(out["attachment"]["file_name"], "note.txt")
        self.assertEqual(out["attachment"]["content_type"], "text/plain")
        self.assertEqual(request.stored[0][0], b"catcat", "the attachment, stored first")
        self.assertIn(("STDOUT", "drawing cat"), request.logs())
        self.assertIn(("WARN", "drawer: careful with cat"), request.logs())

        # A handler's own exception is not a validation error.
        value, _ = validate(schema, {"prompt": "boom"})
        with self.assertRaises(ValueError):
            endpoint.handler(value, FakeRequest().context())

    def test_pydantic_refusals_are_fal_422_entries(self) -> None:
        class Input(BaseModel):
            count: int

            if pydantic.VERSION.startswith("1."):

                @pydantic.validator("count", allow_reuse=True)
                def even(cls, value: int) -> int:  # noqa: N805
                    if value % 2:
                        raise ValueError("count must be even")
                    return value

            else:

                @pydantic.field_validator("count")
                @classmethod
                def even(cls, value: int) -> int:
                    if value % 2:
                        raise ValueError("count must be even")
                    return value

        class Counter(fal.App):
            @fal.endpoint("/")
            def count(self, input: Input) -> dict:
                return {"half": input.count // 2}

        endpoint = to_darkroom_app(Counter).endpoints[""]
        self.assertEqual(endpoint.handler({"count": 4}, FakeRequest().context()), {"half": 2})
        with self.assertRaises(RunnerError) as refused:
            endpoint.handler({"count": 3}, FakeRequest().context())
        wire = refused.exception.to_wire()
        self.assertEqual(wire["code"], "ERR_VALIDATION")
        self.assertEqual(wire["field_errors"][0]["loc"], ["body", "count"])
        self.assertIn("count must be even", wire["field_errors"][0]["msg"])
        self.assertEqual(wire["field_errors"][0]["type"], "value_error")

    def test_async_endpoints_are_awaited(self) -> None:
        class Input(BaseModel):
            n: int

        class Output(BaseModel):
            doubled: int

        class Doubler(fal.App):
            @fal.endpoint("/")
            async def double(self, input: Input) -> Output:
                await asyncio.sleep(0.01)
                print("doubled", input.n)
                return Output(doubled=input.n * 2)

        request = FakeRequest()
        self.assertEqual(to_darkroom_app(Doubler).endpoints[""].handler({"n": 21}, request.context()), {"doubled": 42})
        self.assertIn(("STDOUT", "doubled 21"), request.logs())

    def test_an_endpoint_must_take_a_pydantic_model(self) -> None:
        class Loose(fal.App):
            @fal.endpoint("/")
            def run(self, input: dict) -> dict:
                return input

        with self.assertRaisesRegex(ValueError, "pydantic model"):
            to_darkroom_app(Loose)

    def test_files_need_a_request(self) -> None:
        with self.assertRaisesRegex(RuntimeError, "call it from an endpoint"):
            toolkit.File.from_bytes(b"x")

    def test_image_sizes(self) -> None:
        self.assertEqual((toolkit.get_image_size("portrait_16_9").width, toolkit.get_image_size("portrait_16_9").height), (576, 1024))
        custom = toolkit.ImageSize(width=300, height=200)
        self.assertIs(toolkit.get_image_size(custom), custom)
        with self.assertRaises(ValueError):
            toolkit.get_image_size("huge")

    def test_downloads_are_cached_and_stay_in_their_folder(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            os.environ["DARKROOM_FAL_DATA_DIR"] = folder
            try:
                url = "data:text/plain;base64,aGVsbG8="
                first = toolkit.download_file(url)
                self.assertEqual(first.read_bytes(), b"hello")
                self.assertEqual(first.parent, toolkit.data_dir() / "downloads")
                first.write_bytes(b"changed")
                self.assertEqual(toolkit.download_file(url).read_bytes(), b"changed", "reused, not fetched again")
                self.assertEqual(toolkit.download_file(url, force=True).read_bytes(), b"hello")
                weights = toolkit.download_model_weights("data:application/octet-stream;base64,AAEC")
                self.assertEqual(weights.read_bytes(), b"\x00\x01\x02")
                self.assertTrue(str(weights).startswith(os.path.join(folder, "model_weights")))
                self.assertEqual(toolkit._file_name_of("http://host/a/../../etc/passwd"), "passwd")
                self.assertEqual(toolkit._file_name_of("http://host/..%2F..%2Fsecret"), "2F..2Fsecret")
                with self.assertRaises(RunnerError):
                    toolkit.download_file("file:///etc/passwd", folder)
            finally:
                del os.environ["DARKROOM_FAL_DATA_DIR"]


try:
    from PIL import Image as PILImage
except ImportError:  # pragma: no cover - Pillow is optional
    PILImage = None  # type: ignore[assignment]


@unittest.skipIf(pydantic is None or PILImage is None, "pydantic or Pillow is not installed")
class PillowTest(unittest.TestCase):
    def test_from_pil_stores_the_encoded_image_with_its_size_and_to_pil_reads_it_back(self) -> None:
        from fal import _context

        picture = PILImage.new("RGBA", (12, 7), (10, 200, 30, 128))
        request = FakeRequest()
        with _context.serving(request.context()):
            png = toolkit.Image.from_pil(picture)
            jpeg = toolkit.Image.from_pil(picture, format="jpeg")
        self.assertEqual((png.width, png.height, png.content_type, png.file_name), (12, 7, "image/png", "image.png"))
        self.assertEqual((jpeg.width, jpeg.height, jpeg.content_type), (12, 7, "image/jpeg"))
        stored_png = request.stored[0][0]
        decoded = PILImage.open(io.BytesIO(stored_png))
        self.assertEqual((decoded.size, decoded.mode), ((12, 7), "RGBA"))
        self.assertEqual(decoded.getpixel((3, 3)), (10, 200, 30, 128), "the pixels are stored as drawn")
        self.assertEqual(PILImage.open(io.BytesIO(request.stored[1][0])).format, "JPEG", "RGBA turned RGB for JPEG")
        inline = toolkit.Image(url="data:image/png;base64," + base64.b64encode(stored_png).decode(), content_type="image/png")
        self.assertEqual(inline.to_pil().size, (12, 7))


@unittest.skipIf(pydantic is None, "pydantic is not installed")
class ImageHeaderTest(unittest.TestCase):
    def test_png_and_jpeg_sizes_without_pillow(self) -> None:
        self.assertEqual(toolkit._image_size(_png(7, 9)), (7, 9))
        # The smallest JPEG header: SOI, then a baseline SOF0 with height 2 and width 3.
        jpeg = b"\xff\xd8" + b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 2, 3, 3) + b"\x00" * 9
        self.assertEqual(toolkit._image_size(jpeg), (3, 2))
        self.assertEqual(toolkit._image_size(b"GIF89a"), (None, None))


if __name__ == "__main__":
    unittest.main()

