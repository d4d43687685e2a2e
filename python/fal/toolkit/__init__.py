"""``fal.toolkit`` as fal apps use it: ``File`` and ``Image`` outputs (stored through the gateway,
as every Darkroom runner's outputs are), ``download_file`` and ``download_model_weights`` (into a
cache folder standing in for fal's ``/data``), and the image size inputs.

The cache folder is ``DARKROOM_FAL_DATA_DIR``, else ``~/.cache/darkroom/fal``.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, Field

from darkroom_runner.context import parse_data_uri
from darkroom_runner.errors import RunnerError

from .. import _context

MAX_DOWNLOAD_BYTES = 32 * 1024 * 1024 * 1024


def data_dir() -> Path:
    return Path(os.environ.get("DARKROOM_FAL_DATA_DIR") or Path.home() / ".cache" / "darkroom" / "fal")


class File(BaseModel):
    """fal's File: where an output file is, once stored."""

    url: str = Field(description="The URL where the file can be downloaded from.")
    content_type: Optional[str] = Field(default=None, description="The mime type of the file.")
    file_name: Optional[str] = Field(default=None, description="The name of the file.")
    file_size: Optional[int] = Field(default=None, description="The size of the file in bytes.")

    @classmethod
    def from_bytes(cls, data: bytes, content_type: Optional[str] = None, file_name: Optional[str] = None, repository: Any = None, **_: Any) -> "File":
        """Stores ``data`` for the request being served and returns where it is."""
        guessed = content_type or (mimetypes.guess_type(file_name)[0] if file_name else None) or "application/octet-stream"
        record = _context.require("File.from_bytes").upload(bytes(data), guessed, file_name)
        return cls(**record)

    @classmethod
    def from_path(cls, path: Union[str, os.PathLike], content_type: Optional[str] = None, repository: Any = None, **_: Any) -> "File":
        target = Path(path)
        return cls.from_bytes(target.read_bytes(), content_type or mimetypes.guess_type(target.name)[0], target.name)

    def as_bytes(self) -> bytes:
        return _read(self.url)

    def save(self, path: Union[str, os.PathLike]) -> Path:
        target = Path(path)
        target.write_bytes(self.as_bytes())
        return target


class Image(File):
    """fal's Image: a File with its size."""

    width: Optional[int] = Field(default=None, description="The width of the image in pixels.")
    height: Optional[int] = Field(default=None, description="The height of the image in pixels.")

    @classmethod
    def from_bytes(cls, data: bytes, format: str = "png", size: Optional["ImageSize"] = None, file_name: Optional[str] = None, **_: Any) -> "Image":  # type: ignore[override]
        fmt = format.lower().replace("jpg", "jpeg")
        name = file_name or f"image.{'jpg' if fmt == 'jpeg' else fmt}"
        width, height = (size.width, size.height) if size is not None else _image_size(data)
        record = _context.require("Image.from_bytes").upload(bytes(data), f"image/{fmt}", name, width=width, height=height)
        return cls(**record)

    @classmethod
    def from_pil(cls, pil_image: Any, format: str = "png", file_name: Optional[str] = None, **_: Any) -> "Image":
        fmt = format.lower().replace("jpg", "jpeg")
        buffer = io.BytesIO()
        image = pil_image.convert("RGB") if fmt == "jpeg" and pil_image.mode not in ("RGB", "L") else pil_image
        image.save(buffer, format=fmt.upper())
        return cls.from_bytes(buffer.getvalue(), fmt, ImageSize(width=pil_image.width, height=pil_image.height), file_name)

    def to_pil(self) -> Any:
        from PIL import Image as PILImage  # only apps that use it need Pillow

        return PILImage.open(io.BytesIO(self.as_bytes()))


class ImageSize(BaseModel):
    width: int = Field(default=512, ge=1, le=14142, description="The width of the generated image.")
    height: int = Field(default=512, ge=1, le=14142, description="The height of the generated image.")


# fal's named sizes, as its image apps accept them.
IMAGE_SIZE_PRESETS: dict[str, ImageSize] = {
    "square_hd": ImageSize(width=1024, height=1024),
    "square": ImageSize(width=512, height=512),
    "portrait_4_3": ImageSize(width=768, height=1024),
    "portrait_16_9": ImageSize(width=576, height=1024),
    "landscape_4_3": ImageSize(width=1024, height=768),
    "landscape_16_9": ImageSize(width=1024, height=576),
}

ImageSizeInput = Union[ImageSize, Literal["square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"]]


def get_image_size(source: Union[ImageSize, str]) -> ImageSize:
    if isinstance(source, ImageSize):
        return source
    if source in IMAGE_SIZE_PRESETS:
        return IMAGE_SIZE_PRESETS[source]
    raise ValueError(f"unknown image size {source!r}; one of {', '.join(IMAGE_SIZE_PRESETS)} or {{width, height}}")


def download_file(url: str, target_dir: Union[str, os.PathLike, None] = None, *, force: bool = False, request_headers: Optional[dict] = None) -> Path:
    """Fetches an http(s) or ``data:`` URL into ``target_dir`` (default: the cache's ``downloads``),
    once: a file already there is reused unless ``force``."""
    folder = Path(target_dir) if target_dir is not None else data_dir() / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    name = _file_name_of(url)
    target = folder / name
    if target.exists() and not force:
        return target
    _fetch_to(url, target, request_headers)
    return target


def download_model_weights(url: str, force: bool = False, request_headers: Optional[dict] = None) -> Path:
    """Fetches model weights once per URL into the cache's ``model_weights`` folder."""
    folder = data_dir() / "model_weights" / hashlib.sha256(url.encode()).hexdigest()[:32]
    return download_file(url, folder, force=force, request_headers=request_headers)


def _file_name_of(url: str) -> str:
    if url[:5].lower() == "data:":
        return "download-" + hashlib.sha256(url.encode()).hexdigest()[:16]
    name = os.path.basename(urllib.parse.urlsplit(url).path)
    # A name from a URL must stay a plain name inside the folder.
    name = "".join(c for c in name if c.isalnum() or c in "._-").lstrip(".")
    return name or "download-" + hashlib.sha256(url.encode()).hexdigest()[:16]


def _fetch_to(url: str, target: Path, headers: Optional[dict]) -> None:
    if url[:5].lower() == "data:":
        data, _ = parse_data_uri(url, MAX_DOWNLOAD_BYTES)
        target.write_bytes(data)
        return
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise RunnerError("ERR_FETCH_REFUSED", f"only http(s) and data: URLs are downloaded, got {url[:100]!r}")
    request = urllib.request.Request(url, headers=headers or {})
    # Written beside the target and renamed: a download cut short never looks complete.
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=60) as res:  # noqa: S310 (scheme checked)
            while chunk := res.read(1 << 20):
                out.write(chunk)
        os.replace(partial, target)
    except OSError as err:
        raise RunnerError("ERR_FETCH_FAILED", f"Could not download {url[:200]}: {err}") from err
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _read(url: str) -> bytes:
    ctx = _context.current()
    if ctx is not None:
        return ctx.read(url)[0]
    if url[:5].lower() == "data:":
        return parse_data_uri(url, MAX_DOWNLOAD_BYTES)[0]
    with urllib.request.urlopen(url, timeout=60) as res:  # noqa: S310
        return res.read()


def _image_size(data: bytes) -> tuple[Optional[int], Optional[int]]:
    """Width and height from a PNG's or a JPEG's header, without Pillow; (None, None) otherwise."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                break
            marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            i += 2 + length
    return None, None


__all__ = ["File", "Image", "ImageSize", "ImageSizeInput", "IMAGE_SIZE_PRESETS", "download_file", "download_model_weights", "get_image_size", "data_dir"]
