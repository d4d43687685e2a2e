"""A small JSON Schema validator for app inputs, standard library only.

The gateway already validates every input against the endpoint's schema (ajv, JSON Schema 2020-12)
before it queues a request; the runner validates again because it is what fills in defaults, and
because a runner may be handed inputs by a gateway that knew an older schema. Errors come out in
fal's 422 shape, ``{"loc": ["body", ...], "msg": ..., "type": ...}``, with the same ``type`` values
as the gateway's (ajv keyword names, plus pydantic's ``missing`` and ``extra_forbidden``), so a client
sees one format whichever side refused its input.

Supported keywords: ``type`` (one or a list), ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties`` (false or a schema), ``items``, ``minItems``/``maxItems``, ``minimum``,
``maximum``, ``exclusiveMinimum``/``exclusiveMaximum``, ``multipleOf``, ``minLength``/``maxLength``,
``pattern``, ``anyOf``, ``oneOf``, ``allOf``, ``default`` and local ``$ref`` (``#/$defs/...``).
Others (``format``, ``description``, ``title``, ``examples``...) are ignored, as ajv ignores
unknown formats with ``strict: false``.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

Loc = list  # list[str | int]

_MISSING = object()


class SchemaError(Exception):
    """A schema this validator cannot use (a bad ``$ref``); the app's fault, not the input's."""


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: Any, expected: str) -> bool:
    actual = _type_of(value)
    if expected == "number":
        return actual in ("number", "integer")
    return actual == expected


def _error(loc: Loc, msg: str, kind: str, **ctx: Any) -> dict:
    error = {"loc": ["body", *loc], "msg": msg, "type": kind}
    if ctx:
        error["ctx"] = ctx
    return error


class Validator:
    """Validates values against one root schema (``$ref`` resolves against it)."""

    def __init__(self, schema: dict):
        self.root = schema

    def validate(self, value: Any) -> tuple[Any, list[dict]]:
        """Returns ``(value with defaults filled in, field errors)``; the input is not modified."""
        errors: list[dict] = []
        result = self._check(self.root, copy.deepcopy(value), [], errors)
        return result, errors

    def _resolve(self, schema: dict) -> dict:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise SchemaError(f"only local $refs are supported, got {ref!r}")
            target: Any = self.root
            for part in [p for p in ref[1:].split("/") if p]:
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise SchemaError(f"unresolvable $ref {ref!r}")
                target = target[part]
            schema = target
            seen += 1
            if seen > 32:
                raise SchemaError(f"$ref cycle at {ref!r}")
        return schema

    def _check(self, schema: Any, value: Any, loc: Loc, errors: list[dict]) -> Any:
        if schema is True or schema is None:
            return value
        if schema is False:
            errors.append(_error(loc, "boolean schema is false", "false schema"))
            return value
        schema = self._resolve(schema)

        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_is_type(value, t) for t in types):
                errors.append(_error(loc, f"must be {','.join(types)}", "type", type=",".join(types)))
                return value
        if "const" in schema and not _equal(value, schema["const"]):
            errors.append(_error(loc, "must be equal to constant", "const", allowedValue=schema["const"]))
        if "enum" in schema and not any(_equal(value, e) for e in schema["enum"]):
            errors.append(_error(loc, "must be equal to one of the allowed values", "enum", allowedValues=schema["enum"]))

        if _type_of(value) in ("integer", "number"):
            self._check_number(schema, value, loc, errors)
        elif isinstance(value, str):
            self._check_string(schema, value, loc, errors)
        elif isinstance(value, list):
            value = self._check_array(schema, value, loc, errors)
        elif isinstance(value, dict):
            value = self._check_object(schema, value, loc, errors)

        for sub in schema.get("allOf", []):
            value = self._check(sub, value, loc, errors)
        if "anyOf" in schema:
            value = self._check_alternatives(schema["anyOf"], value, loc, errors, "anyOf")
        if "oneOf" in schema:
            value = self._check_alternatives(schema["oneOf"], value, loc, errors, "oneOf")
        return value

    def _check_alternatives(self, options: list, value: Any, loc: Loc, errors: list[dict], keyword: str) -> Any:
        matches = []
        nested: list[dict] = []
        for option in options:
            attempt: list[dict] = []
            result = self._check(option, copy.deepcopy(value), loc, attempt)
            if attempt:
                nested.extend(attempt)
            else:
                matches.append(result)
        if keyword == "oneOf" and len(matches) > 1:
            errors.append(_error(loc, "must match exactly one schema in oneOf", "oneOf"))
            return value
        if matches:
            return matches[0]
        # Like ajv with allErrors: each alternative's complaints, then the summary.
        errors.extend(nested)
        errors.append(_error(loc, f"must match {'a schema in anyOf' if keyword == 'anyOf' else 'exactly one schema in oneOf'}", keyword))
        return value

    def _check_number(self, schema: dict, value: float, loc: Loc, errors: list[dict]) -> None:
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(_error(loc, f"must be >= {schema['minimum']}", "minimum", comparison=">=", limit=schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(_error(loc, f"must be <= {schema['maximum']}", "maximum", comparison="<=", limit=schema["maximum"]))
        if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool) and value <= schema["exclusiveMinimum"]:
            errors.append(_error(loc, f"must be > {schema['exclusiveMinimum']}", "exclusiveMinimum", comparison=">", limit=schema["exclusiveMinimum"]))
        if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool) and value >= schema["exclusiveMaximum"]:
            errors.append(_error(loc, f"must be < {schema['exclusiveMaximum']}", "exclusiveMaximum", comparison="<", limit=schema["exclusiveMaximum"]))
        step = schema.get("multipleOf")
        if isinstance(step, (int, float)) and step > 0:
            quotient = value / step
            if not math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9):
                errors.append(_error(loc, f"must be multiple of {step}", "multipleOf", multipleOf=step))

    def _check_string(self, schema: dict, value: str, loc: Loc, errors: list[dict]) -> None:
        # JSON Schema counts code points, which is what len() does on a str.
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(_error(loc, f"must NOT have fewer than {schema['minLength']} characters", "minLength", limit=schema["minLength"]))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(_error(loc, f"must NOT have more than {schema['maxLength']} characters", "maxLength", limit=schema["maxLength"]))
        if "pattern" in schema:
            try:
                matched = re.search(schema["pattern"], value) is not None
            except re.error as err:
                raise SchemaError(f"bad pattern {schema['pattern']!r}: {err}") from err
            if not matched:
                errors.append(_error(loc, f'must match pattern "{schema["pattern"]}"', "pattern", pattern=schema["pattern"]))

    def _check_array(self, schema: dict, value: list, loc: Loc, errors: list[dict]) -> list:
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(_error(loc, f"must NOT have fewer than {schema['minItems']} items", "minItems", limit=schema["minItems"]))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(_error(loc, f"must NOT have more than {schema['maxItems']} items", "maxItems", limit=schema["maxItems"]))
        items = schema.get("items")
        if isinstance(items, (dict, bool)):
            return [self._check(items, item, [*loc, i], errors) for i, item in enumerate(value)]
        return value

    def _check_object(self, schema: dict, value: dict, loc: Loc, errors: list[dict]) -> dict:
        properties: dict = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(_error([*loc, name], "Field required", "missing"))
        result = {}
        for key, item in value.items():
            if key in properties:
                result[key] = self._check(properties[key], item, [*loc, key], errors)
                continue
            extra = schema.get("additionalProperties", True)
            if extra is False:
                errors.append(_error([*loc, key], "Extra inputs are not permitted", "extra_forbidden"))
            elif isinstance(extra, dict):
                result[key] = self._check(extra, item, [*loc, key], errors)
                continue
            result[key] = item
        for key, sub in properties.items():
            if key in result:
                continue
            default = _default_of(self._resolve(sub) if isinstance(sub, dict) else sub)
            if default is not _MISSING:
                result[key] = copy.deepcopy(default)
        return result


def _default_of(schema: Any) -> Any:
    if isinstance(schema, dict) and "default" in schema:
        return schema["default"]
    return _MISSING


def _equal(a: Any, b: Any) -> bool:
    # JSON equality: 1 == 1.0, but True is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def validate(schema: dict, value: Any) -> tuple[Any, list[dict]]:
    """Validates ``value`` against ``schema``: ``(value with defaults, field errors)``."""
    return Validator(schema).validate(value)
