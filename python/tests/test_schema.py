import unittest

from darkroom_runner.schema import SchemaError, validate

SCHEMA = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": 5},
        "steps": {"type": "integer", "minimum": 1, "maximum": 10, "default": 4},
        "scale": {"type": "number", "exclusiveMinimum": 0, "default": 1.5},
        "format": {"type": "string", "enum": ["png", "jpeg"], "default": "png"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "flag": {"type": "boolean"},
        "size": {
            "default": "square",
            "anyOf": [
                {"type": "string", "enum": ["square", "wide"]},
                {"type": "object", "properties": {"width": {"type": "integer", "default": 512}, "height": {"type": "integer", "default": 512}}, "additionalProperties": False},
            ],
        },
    },
    "required": ["prompt"],
    "additionalProperties": False,
}


def locs(errors):
    return [(tuple(e["loc"]), e["type"]) for e in errors]


class DefaultsTest(unittest.TestCase):
    def test_missing_fields_take_their_defaults(self):
        value, errors = validate(SCHEMA, {"prompt": "cat"})
        self.assertEqual(errors, [])
        self.assertEqual(value, {"prompt": "cat", "steps": 4, "scale": 1.5, "format": "png", "size": "square"})

    def test_the_input_is_not_modified(self):
        given = {"prompt": "cat", "size": {"width": 64}}
        value, _ = validate(SCHEMA, given)
        self.assertEqual(given, {"prompt": "cat", "size": {"width": 64}})
        self.assertEqual(value["size"], {"width": 64, "height": 512})

    def test_defaults_are_copies(self):
        schema = {"type": "object", "properties": {"list": {"type": "array", "default": []}}}
        first, _ = validate(schema, {})
        first["list"].append(1)
        second, _ = validate(schema, {})
        self.assertEqual(second["list"], [])


class ErrorsTest(unittest.TestCase):
    def test_required_and_extra_fields_use_pydantic_types(self):
        _, errors = validate(SCHEMA, {"nope": 1})
        self.assertEqual(locs(errors), [(("body", "prompt"), "missing"), (("body", "nope"), "extra_forbidden")])
        self.assertEqual(errors[0]["msg"], "Field required")
        self.assertEqual(errors[1]["msg"], "Extra inputs are not permitted")

    def test_types_in_input_order(self):
        _, errors = validate(SCHEMA, {"prompt": 3, "steps": 2.5, "flag": 1, "tags": "x"})
        self.assertEqual(
            locs(errors),
            [(("body", "prompt"), "type"), (("body", "steps"), "type"), (("body", "flag"), "type"), (("body", "tags"), "type")],
        )
        self.assertEqual(errors[0]["msg"], "must be string")

    def test_booleans_are_not_numbers_and_whole_floats_are_integers(self):
        _, errors = validate({"type": "integer"}, True)
        self.assertEqual(locs(errors), [(("body",), "type")])
        value, errors = validate({"type": "integer"}, 3.0)
        self.assertEqual((value, errors), (3.0, []))

    def test_ranges_lengths_enums_and_items(self):
        _, errors = validate(SCHEMA, {"prompt": "toolong", "steps": 0, "scale": 0, "format": "gif", "tags": ["a", 2, "c"]})
        self.assertEqual(
            locs(errors),
            [
                (("body", "prompt"), "maxLength"),
                (("body", "steps"), "minimum"),
                (("body", "scale"), "exclusiveMinimum"),
                (("body", "format"), "enum"),
                (("body", "tags"), "maxItems"),
                (("body", "tags", 1), "type"),
            ],
        )
        self.assertEqual(errors[1]["msg"], "must be >= 1")
        self.assertEqual(errors[1]["ctx"], {"comparison": ">=", "limit": 1})

    def test_string_length_counts_code_points(self):
        _, errors = validate(SCHEMA, {"prompt": "wörld"})
        self.assertEqual(errors, [])

    def test_any_of_reports_each_alternative_then_the_summary(self):
        _, errors = validate(SCHEMA, {"prompt": "x", "size": {"width": "big"}})
        self.assertEqual(locs(errors), [(("body", "size"), "type"), (("body", "size", "width"), "type"), (("body", "size"), "anyOf")])

    def test_one_of_refuses_two_matches(self):
        _, errors = validate({"oneOf": [{"type": "number"}, {"type": "integer"}]}, 3)
        self.assertEqual(locs(errors), [(("body",), "oneOf")])

    def test_pattern_const_multiple_of(self):
        schema = {"type": "object", "properties": {"url": {"type": "string", "pattern": "^(https?://|data:)"}, "v": {"const": 2}, "m": {"multipleOf": 0.5}}}
        _, errors = validate(schema, {"url": "ftp://x", "v": 3, "m": 0.75})
        self.assertEqual(locs(errors), [(("body", "url"), "pattern"), (("body", "v"), "const"), (("body", "m"), "multipleOf")])
        _, errors = validate(schema, {"url": "https://x", "v": 2.0, "m": 1.5})
        self.assertEqual(errors, [])

    def test_additional_properties_schema(self):
        schema = {"type": "object", "additionalProperties": {"type": "integer"}}
        _, errors = validate(schema, {"a": 1, "b": "x"})
        self.assertEqual(locs(errors), [(("body", "b"), "type")])


class RefTest(unittest.TestCase):
    def test_local_refs_resolve(self):
        schema = {"$defs": {"Size": {"type": "integer", "minimum": 1, "default": 8}}, "type": "object", "properties": {"n": {"$ref": "#/$defs/Size"}}}
        value, errors = validate(schema, {})
        self.assertEqual((value, errors), ({"n": 8}, []))
        _, errors = validate(schema, {"n": 0})
        self.assertEqual(locs(errors), [(("body", "n"), "minimum")])

    def test_remote_refs_are_a_schema_error(self):
        with self.assertRaises(SchemaError):
            validate({"$ref": "https://example.com/schema.json"}, 1)


if __name__ == "__main__":
    unittest.main()
