"""pydantic, v1 or v2 (whichever is installed), seen through one small interface.

Debian 12's ``python3-pydantic`` is 1.10; pip gives 2.x. fal apps are written against either, so the
adapter asks pydantic the same four questions both ways: is this a model, what is its JSON Schema,
validate this input, turn this output into JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic

from darkroom_runner.errors import RunnerError, validation_error

V2 = int(pydantic.VERSION.split(".")[0]) >= 2


def is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, pydantic.BaseModel)


def schema_of(model: type) -> dict:
    """The model's JSON Schema, with its shared parts under ``$defs`` (as JSON Schema 2020-12, which
    the gateway's ajv speaks, and the runner's own validator reads)."""
    if V2:
        return model.model_json_schema()
    schema = model.schema()
    definitions = schema.pop("definitions", None)
    text = json.dumps(schema if definitions is None else {**schema, "$defs": definitions})
    return json.loads(text.replace('"#/definitions/', '"#/$defs/'))


def validate(model: type, data: Any) -> Any:
    """``model`` from the (already schema-checked) input; pydantic's own refusals come back as
    fal's 422 entries, ``{"loc": ["body", ...], "msg", "type"}``."""
    try:
        return model.model_validate(data) if V2 else model.parse_obj(data)
    except pydantic.ValidationError as err:
        raise validation_error([{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in err.errors()]) from None


def to_json(value: Any) -> Any:
    """An endpoint's return value as JSON: models (and the toolkit's File/Image, which are models)
    dumped as JSON would carry them; dicts and lists walked; anything else as is."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", exclude_none=False) if V2 else json.loads(value.json())
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def refuse_output(endpoint: str, err: Exception) -> RunnerError:
    return RunnerError("ERR_APP_ERROR", f"{endpoint} returned an output that is not JSON: {err}")
