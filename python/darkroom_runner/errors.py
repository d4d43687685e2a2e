"""Errors a handler raises, and the ones the runner's gateway client raises.

Codes are those of Darkroom's registry (``src/core/errors.ts``, ``docs/errors.md``); the gateway
turns an unknown code into ``ERR_APP_ERROR``.
"""

from __future__ import annotations

from typing import Any, Sequence


class RunnerError(Exception):
    """An error with a registry code that reaches the client as is.

    ``RunnerError("ERR_APP_UNAVAILABLE", "the model is loading", status=503)``; ``status`` overrides
    the registry's HTTP status, ``field_errors`` are fal's ``detail[]`` entries for a 422.
    """

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None, field_errors: Sequence[dict] | None = None):
        super().__init__(message or code)
        self.code = code
        self.message = message or code
        self.status = status
        self.field_errors = list(field_errors) if field_errors is not None else None

    def to_wire(self) -> dict:
        error: dict[str, Any] = {"code": self.code, "message": self.message[: 64 * 1024]}
        if self.status is not None:
            error["status"] = self.status
        if self.field_errors is not None:
            error["field_errors"] = self.field_errors
        return error


class Cancelled(RunnerError):
    """Raised by ``ctx.check_cancelled()`` and ``ctx.sleep()`` once the request was cancelled."""

    def __init__(self, message: str = "Request cancelled by client"):
        super().__init__("ERR_CLIENT_CANCELLED", message)


def field_error(field: str | Sequence[str | int], msg: str, type: str = "value_error") -> RunnerError:
    """A 422 about one input field, as the gateway's own validation reports it:
    ``raise field_error("frequency", "must be below half the sample rate")``."""
    path = [field] if isinstance(field, str) else list(field)
    return RunnerError("ERR_VALIDATION", msg, field_errors=[{"loc": ["body", *path], "msg": msg, "type": type}])


def validation_error(field_errors: list[dict]) -> RunnerError:
    first = field_errors[0] if field_errors else {"msg": "Input validation failed"}
    return RunnerError("ERR_VALIDATION", str(first.get("msg", "Input validation failed")), field_errors=field_errors)


class GatewayError(Exception):
    """A gateway answered with a refusal (4xx, or 500)."""

    def __init__(self, status: int, error_type: str | None, detail: Any, method: str, path: str):
        self.status = status
        self.error_type = error_type
        self.detail = detail
        text = detail if isinstance(detail, str) else f"HTTP {status}" if detail is None else repr(detail)
        super().__init__(f"{method} {path}: {status} {error_type or ''} {text}".replace("  ", " "))

    @property
    def lease_lost(self) -> bool:
        return self.status == 409 and self.error_type == "lease_lost"


class GatewayUnreachable(Exception):
    """No gateway answered in time (connection refused or reset, timeouts, 502/503/504)."""
