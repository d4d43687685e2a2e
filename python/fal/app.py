"""``fal.App``, ``@fal.endpoint`` and ``@fal.realtime`` as fal's SDK declares them, and the adapter
that serves such a class on Darkroom's Python runner (:func:`to_darkroom_app`).

A fal app is a class: options as class keywords or attributes (``keep_alive``, ``max_concurrency``,
``machine_type``, ``requirements``...), ``setup()`` to load models, and methods that take one
pydantic model and return another. The adapter turns it into a :class:`darkroom_runner.App`: the
options become knobs, the models JSON Schemas, and each call validates the input with pydantic,
runs the method with the request's logs and files wired to fal's helpers, and dumps the output.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
import re
import shlex
import sys
import typing
from typing import Any, Callable, Optional

from darkroom_runner.app import App as DarkroomApp
from darkroom_runner.context import Context
from darkroom_runner.errors import RunnerError

from . import _context, _logs, _models

log = logging.getLogger("darkroom_runner.fal")

# fal's option → Darkroom's knob.
KNOB_OF_OPTION = {
    "keep_alive": "keep_alive",
    "min_concurrency": "min_runners",
    "max_concurrency": "max_runners",
    "max_multiplexing": "max_multiplexing",
    "request_timeout": "request_timeout",
    "startup_timeout": "startup_timeout",
    "concurrency_buffer": "concurrency_buffer",
}
# Options that describe the machine and the environment: kept for the manifest, not knobs.
DESCRIPTIVE_OPTIONS = ("machine_type", "num_gpus", "requirements", "app_name", "python_version")
_MARK = "_fal_endpoint"


class App:
    """Subclass it as on fal: ``class MyApp(fal.App, keep_alive=300, max_concurrency=4)``."""

    machine_type: Optional[str] = None
    num_gpus: Optional[int] = None
    requirements: list = []
    app_name: Optional[str] = None

    _fal_options: dict = {}

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__()
        merged = dict(getattr(cls, "_fal_options", {}))
        # Class attributes first, then keywords: `class A(fal.App, keep_alive=10)` wins over `keep_alive = 5`.
        for name in (*KNOB_OF_OPTION, *DESCRIPTIVE_OPTIONS):
            if name in vars(cls):
                merged[name] = vars(cls)[name]
        unknown = sorted(set(options) - set(KNOB_OF_OPTION) - set(DESCRIPTIVE_OPTIONS))
        if unknown:
            # fal takes more options (kind, resolver, host settings); they mean nothing here.
            log.warning("%s: fal options without a Darkroom meaning are ignored: %s", cls.__name__, ", ".join(unknown))
        merged.update({k: v for k, v in options.items() if k not in unknown})
        cls._fal_options = merged

    def setup(self) -> None:
        """Loads models; runs once per runner before it takes requests."""

    def teardown(self) -> None:
        """Runs when the runner stops."""


def endpoint(path: str = "/", **_ignored: Any) -> Callable:
    """``@fal.endpoint("/")``: the method takes one pydantic model and returns one."""
    return _mark(path, "http")


def realtime(path: str = "/realtime", **_ignored: Any) -> Callable:
    """``@fal.realtime("/realtime")``: a realtime endpoint, each message one call of the method, on
    runners the gateway's scheduler starts (``darkroom serve --apps``) and on remote runners alike."""
    return _mark(path, "realtime")


def _mark(path: str, kind: str) -> Callable:
    def mark(fn: Callable) -> Callable:
        setattr(fn, _MARK, {"path": path, "kind": kind})
        return fn

    return mark


def is_fal_app(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, App) and obj is not App


def default_app_id(cls: type) -> str:
    """``app_name`` (with an owner, or under ``local/``), else the class name in kebab case."""
    name = cls._fal_options.get("app_name") or re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__)
    name = re.sub(r"[^a-z0-9._/-]+", "-", str(name).lower()).strip("-")
    return name if "/" in name else f"local/{name}"


def to_darkroom_app(cls: type, app_id: Optional[str] = None) -> DarkroomApp:
    """The Darkroom app that serves fal app class ``cls`` (an instance of it does the work)."""
    _logs.install()
    options = cls._fal_options
    knobs = {KNOB_OF_OPTION[k]: v for k, v in options.items() if k in KNOB_OF_OPTION and v is not None}
    description = inspect.getdoc(cls) or ""
    if description == inspect.getdoc(App):
        description = ""
    app = DarkroomApp(
        app_id or default_app_id(cls),
        knobs=knobs,
        metadata={"display_name": options.get("app_name") or cls.__name__, "category": "other", "description": description, "tags": ["fal"]},
    )
    app.fal_options = dict(options)  # type: ignore[attr-defined]
    for name in ("machine_type", "num_gpus"):
        if options.get(name) is not None:
            app.metadata[name] = options[name]
    requirements = [str(r) for r in options.get("requirements") or []]
    if requirements:
        app.metadata["requirements"] = requirements
    missing = missing_requirements(requirements)
    if missing:
        # fal installs them into the app's environment; here they are the machine's to install.
        app.unavailable = {"reason": f"Python packages missing on the runner's machine: {', '.join(missing)}", "remedy": f"pip install {' '.join(shlex.quote(r) for r in missing)}"}  # type: ignore[attr-defined]
    instance = cls()
    app.setup(lambda: instance.setup())
    app.teardown(lambda _state: instance.teardown())
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            spec = getattr(member, _MARK, None)
            if spec is not None:
                _add_endpoint(app, getattr(instance, name), spec)
    if not app.endpoints:
        raise ValueError(f"{cls.__name__} has no @fal.endpoint method")
    return app


def missing_requirements(requirements: list) -> list:
    """The pip requirements (``torch==2.3``, ``diffusers[torch]>=0.30``) whose distribution is not
    installed for this Python. Versions are not compared: a package that is there is taken as it is."""
    missing = []
    for requirement in requirements:
        name = re.split(r"[\s<>=!~;\[@(]", requirement.strip(), maxsplit=1)[0]
        if not name:
            continue
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
    return missing


def _add_endpoint(app: DarkroomApp, method: Callable, spec: dict) -> None:
    input_model, output_model = _models_of(method)
    input_schema = _models.schema_of(input_model) if input_model else {"type": "object"}
    output_schema = _models.schema_of(output_model) if output_model else {}

    def handler(input: dict, ctx: Context) -> Any:
        with _context.serving(ctx):
            try:
                result = method(_models.validate(input_model, input)) if input_model else method()
                if inspect.isawaitable(result):
                    # An `async def` endpoint: each request runs in a thread of its own, so it gets its own loop.
                    result = asyncio.run(_awaited(result))
            finally:
                # A last line printed without a newline still reaches the request's logs.
                sys.stdout.flush()
                sys.stderr.flush()
        try:
            return _models.to_json(result)
        except (TypeError, ValueError) as err:
            raise _models.refuse_output(spec["path"], err) from err

    description = (inspect.getdoc(method) or "").strip() or None
    app.endpoint(spec["path"], input_schema=input_schema, output_schema=output_schema, description=description, kind=spec["kind"])(handler)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _models_of(method: Callable) -> tuple[Optional[type], Optional[type]]:
    """The pydantic model the method takes (its one parameter) and the one it returns."""
    try:
        hints = typing.get_type_hints(method)
    except NameError:
        # A model defined inside a function cannot be found from the module by name: take the
        # annotations as they are when they are objects already.
        hints = {k: v for k, v in getattr(method, "__annotations__", {}).items() if not isinstance(v, str)}
    params = [p for p in inspect.signature(method).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) > 1:
        raise ValueError(f"{method.__qualname__} takes {len(params)} arguments; a fal endpoint takes one pydantic model")
    input_model = hints.get(params[0].name) if params else None
    if params and not _models.is_model(input_model):
        raise ValueError(f"{method.__qualname__}: its argument must be annotated with a pydantic model, got {input_model!r}")
    output_model = hints.get("return")
    return input_model, output_model if _models.is_model(output_model) else None


__all__ = ["App", "RunnerError", "endpoint", "realtime", "to_darkroom_app", "is_fal_app", "default_app_id"]
