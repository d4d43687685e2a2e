"""A fal app written with fal's SDK, served by Darkroom unchanged (CPU only, pydantic v1 or v2):

    python -m darkroom_runner --gateway http://127.0.0.1:8787 --token "$TOKEN" \\
        --app python/examples/fal_text_card.py::TextCard

It counts a text's words and draws a card: a PNG of the requested size in the chosen colour, with a
band for each word, built with the standard library so that the example needs nothing but
pydantic. The end-to-end test (test/python/fal-app.test.ts) calls it with the official fal client.
"""

from __future__ import annotations

import struct
import zlib
from typing import Literal

import pydantic
from pydantic import BaseModel, Field

import fal
from fal.toolkit import Image, ImageSizeInput, get_image_size

# pydantic's own checks, beyond what a JSON Schema says: v1 and v2 spell the decorator differently.
check_text = pydantic.validator("text", allow_reuse=True) if pydantic.VERSION.startswith("1.") else pydantic.field_validator("text")


class CardInput(BaseModel):
    text: str = Field(description="The words to put on the card.", min_length=1, max_length=2000)
    color: Literal["red", "green", "blue"] = Field(default="blue", description="The card's colour.")
    image_size: ImageSizeInput = Field(default="square", description="The card's size: a preset or {width, height}.")
    shout: bool = Field(default=False, description="Upper-case the text.")

    @check_text
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must have a word in it")
        return value


class CardOutput(BaseModel):
    text: str = Field(description="The text as put on the card.")
    words: int = Field(description="How many words it has.")
    image: Image = Field(description="The card.")


class TextCard(fal.App, keep_alive=120, max_concurrency=2, max_multiplexing=2):
    """Counts a text's words and draws a card for it."""

    machine_type = "S"
    requirements = ["pydantic"]

    def setup(self) -> None:
        self.palette = {"red": (200, 40, 40), "green": (40, 160, 70), "blue": (40, 80, 200)}

    @fal.endpoint("/")
    def card(self, input: CardInput) -> CardOutput:
        words = input.text.split()
        print(f"drawing a card of {len(words)} words")
        size = get_image_size(input.image_size)
        png = _card_png(size.width, size.height, self.palette[input.color], len(words))
        text = input.text.upper() if input.shout else input.text
        return CardOutput(text=text, words=len(words), image=Image.from_bytes(png, "png"))


def _card_png(width: int, height: int, rgb: tuple, bands: int) -> bytes:
    """Rows of ``rgb``, with ``bands`` white stripes across (one per word, up to a row each 4 px)."""
    stripes = {(i + 1) * height // (bands + 1) for i in range(min(bands, max(0, height // 4)))}
    solid = bytes(rgb) * width
    white = b"\xff\xff\xff" * width
    raw = b"".join(b"\x00" + (white if y in stripes else solid) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
