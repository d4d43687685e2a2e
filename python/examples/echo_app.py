"""A pure-Python app: echoes a message after some steps, with logs, progress, two output files
(a PNG drawn with zlib and struct, and a text file) and cancellation between steps.

    python -m darkroom_runner --gateway http://127.0.0.1:8787 --token "$TOKEN" --app examples/echo_app.py

It is the app the end-to-end test (test/python/python-runner.test.ts) serves.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from darkroom_runner import FILE_SCHEMA, IMAGE_SCHEMA, App, Cancelled, field_error

app = App(
    id="examples/python-echo",
    version="1.0.0",
    metadata={
        "display_name": "Python echo",
        "category": "other",
        "description": "Echoes a message after a few steps, with a drawn PNG and a text file. Served by a Python runner.",
        "tags": ["example", "python"],
        "license": "MIT",
    },
    knobs={"max_multiplexing": 2, "request_timeout": 120},
)

INPUT = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "minLength": 1, "maxLength": 10_000, "description": "What to echo"},
        "steps": {"type": "integer", "minimum": 0, "maximum": 100, "default": 3, "description": "How many steps to take"},
        "step_ms": {"type": "integer", "minimum": 0, "maximum": 10_000, "default": 50, "description": "Milliseconds per step"},
        "width": {"type": "integer", "minimum": 1, "maximum": 512, "default": 16},
        "height": {"type": "integer", "minimum": 1, "maximum": 512, "default": 8},
        "shout": {"type": "boolean", "default": False},
        "sync_mode": {"type": "boolean", "default": False, "description": "Return the files inline as data: URIs"},
    },
    "required": ["message"],
    "additionalProperties": False,
}

OUTPUT = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "attempt": {"type": "integer"},
        "steps": {"type": "integer"},
        "image": IMAGE_SCHEMA,
        "image_sha256": {"type": "string"},
        "text": FILE_SCHEMA,
        "greeting": {"type": "string"},
    },
    "required": ["message", "attempt", "steps", "image", "image_sha256", "text"],
}


def png(width: int, height: int, seed: bytes) -> bytes:
    """An RGB gradient tinted by `seed`, as a PNG (no imaging library needed)."""
    tint = seed[0] if seed else 0
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter type 0 (none) for each scanline
        for x in range(width):
            row += bytes(((x * 255) // max(1, width - 1), (y * 255) // max(1, height - 1), tint))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")


@app.setup
def setup():
    # Stands in for loading a model: whatever it returns is ctx.state in every handler.
    return {"greeting": "hello from Python"}


@app.endpoint("/", input_schema=INPUT, output_schema=OUTPUT, description="Echo a message, slowly")
def echo(input: dict, ctx) -> dict:
    message = input["message"]
    if message.strip() == "":
        # A check the schema cannot express: a 422 like the gateway's own.
        raise field_error("message", "must not be blank")
    ctx.log(f"echoing {len(message)} characters in {input['steps']} steps (attempt {ctx.attempt})")
    for step in range(input["steps"]):
        try:
            ctx.sleep(input["step_ms"] / 1000)
        except Cancelled:
            ctx.log(f"cancellation seen at step {step}", "WARN")
            raise
        ctx.progress(step + 1, input["steps"], f"step {step + 1}")
        ctx.log(f"step {step + 1} of {input['steps']}")
    text = message.upper() if input["shout"] else message
    image_bytes = png(input["width"], input["height"], text.encode())
    image = ctx.upload(image_bytes, "image/png", "echo.png", width=input["width"], height=input["height"])
    text_file = ctx.upload(text.encode("utf-8"), "text/plain", "message.txt")
    ctx.bill(1)
    return {
        "message": text,
        "attempt": ctx.attempt,
        "steps": input["steps"],
        "image": image,
        "image_sha256": hashlib.sha256(image_bytes).hexdigest(),
        "text": text_file,
        "greeting": ctx.state["greeting"],
    }


@app.endpoint("/count", kind="stream", input_schema={"type": "object", "properties": {"count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3}}}, description="Counts up, one partial per step")
def count(input: dict, ctx):
    for i in range(1, input["count"] + 1):
        ctx.sleep(0.01)
        yield {"count": i}
