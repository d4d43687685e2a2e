"""Declaring an app: :class:`App`, ``@endpoint`` and ``setup()``.

Two styles, which may be mixed::

    app = App(id="demo/echo", metadata={...}, knobs={"max_multiplexing": 2})

    @app.setup
    def load():
        return {"greeting": "hello"}        # becomes ctx.state

    @app.endpoint("/", input_schema={...}, output_schema={...})
    def echo(input, ctx):
        return {"text": ctx.state["greeting"] + input["name"]}

or, like ``fal.App``::

    class Echo(App):
        id = "demo/echo"
        knobs = {"max_multiplexing": 2}

        def setup(self):
            self.greeting = "hello"

        @endpoint("/", input_schema={...}, output_schema={...})
        def echo(self, input, ctx):
            return {"text": self.greeting + input["name"]}

    app = Echo()
"""

from __future__ import annotations

import copy
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

KNOB_NAMES = ("min_runners", "max_runners", "keep_alive", "max_multiplexing", "concurrency_buffer", "request_timeout", "startup_timeout")
DEFAULT_KNOBS = {"min_runners": 0, "max_runners": 2, "keep_alive": 60, "max_multiplexing": 1, "concurrency_buffer": 0, "request_timeout": 300, "startup_timeout": 600}
METADATA_FIELDS = ("display_name", "category", "description", "tags", "license", "machine_type", "num_gpus", "requirements")

_APP_ID = re.compile(r"^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9._-]*$")
_PATH = re.compile(r"^[A-Za-z0-9_\-/]*$")
_MARK = "_darkroom_endpoint"

# fal's File record, for output schemas.
FILE_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "url": {"type": "string"},
        "content_type": {"type": "string"},
        "file_name": {"type": "string"},
        "file_size": {"type": "integer"},
    },
    "required": ["url", "content_type", "file_name", "file_size"],
}
IMAGE_SCHEMA: dict = {
    **FILE_SCHEMA,
    "properties": {**FILE_SCHEMA["properties"], "width": {"type": "integer"}, "height": {"type": "integer"}},
}


@dataclass
class Endpoint:
    """One endpoint. ``path`` is stored without its leading slash: ``""`` is the root."""

    path: str
    handler: Callable[..., Any]
    input_schema: dict
    output_schema: dict = field(default_factory=dict)
    description: Optional[str] = None
    kind: str = "http"

    def to_wire(self) -> dict:
        wire: dict[str, Any] = {"path": self.path, "kind": self.kind, "input": self.input_schema, "output": self.output_schema}
        if self.description:
            wire["description"] = self.description
        return wire


def _normalise_path(path: str) -> str:
    stripped = path.strip("/")
    if not _PATH.match(stripped) or len(stripped) > 200:
        raise ValueError(f"endpoint path {path!r} may hold only letters, digits, _, - and /")
    return stripped


def _spec(path: str, input_schema: Optional[dict], output_schema: Optional[dict], description: Optional[str], kind: str) -> dict:
    # A realtime endpoint's messages come as runs like any other (ephemeral, sync mode).
    if kind not in ("http", "stream", "realtime"):
        raise ValueError(f"endpoint kind must be 'http', 'stream' or 'realtime', got {kind!r}")
    schema = input_schema if input_schema is not None else {"type": "object"}
    if not isinstance(schema, dict):
        raise TypeError("input_schema must be a JSON Schema object (a dict)")
    return {
        "path": _normalise_path(path),
        "input_schema": schema,
        "output_schema": output_schema or {},
        "description": description,
        "kind": kind,
    }


def endpoint(path: str = "/", *, input_schema: Optional[dict] = None, output_schema: Optional[dict] = None, description: Optional[str] = None, kind: str = "http") -> Callable:
    """Marks a method of an :class:`App` subclass as an endpoint: ``@endpoint("/", input_schema={...})``.

    The method is called as ``method(self, input, ctx)``. ``kind="stream"`` expects a generator: each
    value it yields is a partial result, the last one is the output.
    """
    spec = _spec(path, input_schema, output_schema, description, kind)

    def mark(fn: Callable) -> Callable:
        setattr(fn, _MARK, spec)
        return fn

    return mark


class App:
    """An app served by a Python runner. See the module's docstring for both declaration styles."""

    id: str = ""
    version: str = "0.1.0"
    knobs: dict = {}
    metadata: dict = {}

    def __init__(self, id: Optional[str] = None, *, version: Optional[str] = None, knobs: Optional[dict] = None, metadata: Optional[dict] = None):
        self.id = id or type(self).id
        self.version = version or type(self).version
        self.knobs = {**type(self).knobs, **(knobs or {})}
        self.metadata = {**type(self).metadata, **(metadata or {})}
        if not _APP_ID.match(self.id or ""):
            raise ValueError(f"invalid app id {self.id!r}: expected owner/name in lowercase")
        for name, value in self.knobs.items():
            if name not in KNOB_NAMES:
                raise ValueError(f"unknown knob {name!r}; knobs are {', '.join(KNOB_NAMES)}")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"knob {name} must be a non-negative number, got {value!r}")
        self._setup_hook: Optional[Callable[[], Any]] = None
        self._teardown_hook: Optional[Callable[[Any], Any]] = None
        self.state: Any = None
        # Why the app cannot run on this machine, ``{"reason", "remedy"}``, or None. A runner of an
        # unavailable app registers it (so it is listed, and refused with the remedy) but runs no
        # setup() and takes no requests.
        self.unavailable: Optional[dict] = None
        self.endpoints: dict[str, Endpoint] = {}
        # Methods marked with @endpoint, in the order the class (and its bases) declared them.
        for klass in reversed(type(self).__mro__):
            for name, member in vars(klass).items():
                spec = getattr(member, _MARK, None)
                if spec is not None:
                    self._add(spec, getattr(self, name))

    def _add(self, spec: dict, handler: Callable) -> None:
        if spec["path"] in self.endpoints and self.endpoints[spec["path"]].handler != handler:
            raise ValueError(f"duplicate endpoint path '/{spec['path']}' in {self.id}")
        self.endpoints[spec["path"]] = Endpoint(handler=handler, **spec)

    def endpoint(self, path: str = "/", *, input_schema: Optional[dict] = None, output_schema: Optional[dict] = None, description: Optional[str] = None, kind: str = "http") -> Callable:
        """Registers a function as an endpoint: ``@app.endpoint("/", input_schema={...})``; it is
        called as ``fn(input, ctx)``."""
        spec = _spec(path, input_schema, output_schema, description, kind)

        def register(fn: Callable) -> Callable:
            self._add(spec, fn)
            return fn

        return register

    def setup(self, fn: Optional[Callable[[], Any]] = None) -> Any:
        """As a decorator (``@app.setup``), registers the function that loads models; what it returns
        is ``ctx.state``. Subclasses override ``setup(self)`` instead. Runs once per runner, before
        it takes requests."""
        if fn is not None:
            self._setup_hook = fn
            return fn
        return self._setup_hook() if self._setup_hook else None

    def teardown(self, fn: Optional[Callable[[Any], Any]] = None) -> Any:
        """As a decorator, registers a function called with the state when the runner stops;
        subclasses override ``teardown(self)``."""
        if fn is not None:
            self._teardown_hook = fn
            return fn
        return self._teardown_hook(self.state) if self._teardown_hook else None

    def run_setup(self) -> None:
        self.state = self.setup()

    def resolved_knobs(self) -> dict:
        return {**DEFAULT_KNOBS, **self.knobs}

    def manifest(self) -> dict:
        """The ``app`` part of the registration: what the gateway serves and lists for this app."""
        if not self.endpoints:
            raise ValueError(f"app {self.id} has no endpoints")
        metadata = {k: copy.deepcopy(v) for k, v in self.metadata.items() if k in METADATA_FIELDS}
        metadata.setdefault("display_name", self.id)
        for wire in ("category", "description"):
            metadata.setdefault(wire, "other" if wire == "category" else (inspect.getdoc(type(self)) if type(self) is not App else "") or "")
        manifest = {
            "id": self.id,
            "version": self.version,
            "endpoints": [e.to_wire() for e in sorted(self.endpoints.values(), key=lambda e: e.path)],
            "knobs": self.resolved_knobs(),
            "metadata": metadata,
        }
        if self.unavailable:
            manifest["unavailable"] = {"reason": str(self.unavailable["reason"])[:2000], "remedy": str(self.unavailable["remedy"])[:2000]}
        return manifest
