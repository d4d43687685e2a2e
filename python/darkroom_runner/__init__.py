"""Darkroom's Python runner SDK: write an app, serve it on a Darkroom gateway.

Standard library only. See ``python/README.md``.
"""

import logging

from .app import FILE_SCHEMA, IMAGE_SCHEMA, App, Endpoint, endpoint
from .client import GatewayClient
from .context import Context
from .errors import Cancelled, GatewayError, GatewayUnreachable, RunnerError, field_error
from .runner import Runner
from .schema import validate

__version__ = "0.1.0"

# A library leaves logging set-up to its program (the CLI configures it).
logging.getLogger("darkroom_runner").addHandler(logging.NullHandler())

__all__ = [
    "App",
    "Cancelled",
    "Context",
    "Endpoint",
    "FILE_SCHEMA",
    "GatewayClient",
    "GatewayError",
    "GatewayUnreachable",
    "IMAGE_SCHEMA",
    "Runner",
    "RunnerError",
    "endpoint",
    "field_error",
    "validate",
]
