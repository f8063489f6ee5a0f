"""The stand-in's JSON answers validate against the schemas chains ask for, with strings from the prompt."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from sandbox.schema_answers import answer_for, instance_for

PROMPT = "Dana will ship the release notes on Friday after the review"

SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "bounded strings": {"type": "array", "items": {"type": "string", "minLength": 40, "maxLength": 45}},
    "enum and const": {
        "type": "object",
        "required": ["mood", "kind"],
        "properties": {"mood": {"enum": ["calm", "tense"]}, "kind": {"const": "meeting"}},
    },
    "numbers in bounds": {
        "type": "array",
        "minItems": 3,
        "maxItems": 3,
        "items": {"type": "number", "exclusiveMinimum": 10, "maximum": 11.5},
    },
    "integers, multiples": {"type": "integer", "minimum": 7, "multipleOf": 5},
    "nullable and union": {
        "type": "object",
        "properties": {"a": {"type": ["null", "integer"]}, "b": {"anyOf": [{"type": "null"}, {"type": "boolean"}]}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
    "required without properties": {"type": "object", "required": ["x"]},
    "all of": {"allOf": [{"properties": {"a": {"type": "string"}}}, {"required": ["a", "b"]}]},
    "local refs": {
        "type": "array",
        "items": {"$ref": "#/$defs/item"},
        "$defs": {"item": {"type": "object", "required": ["start"], "properties": {"start": {"type": "number"}}}},
    },
    "formats": {
        "type": "object",
        "required": ["when", "mail"],
        "properties": {"when": {"type": "string", "format": "date"}, "mail": {"type": "string", "format": "email"}},
    },
    "pattern": {"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9 -]*$"}, "uniqueItems": True},
    "no items limit given": {"type": "array", "items": {"type": "boolean"}, "minItems": 1},
    "tuple": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 2},
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_instances_validate(name: str) -> None:
    schema = SCHEMAS[name]
    value = instance_for(schema, PROMPT)
    errors = [error.message for error in Draft202012Validator(schema).iter_errors(value)]
    assert errors == [], f"{name}: {value!r}"


def test_strings_are_marked_and_taken_from_the_prompt_in_turn() -> None:
    value = instance_for({"type": "array", "items": {"type": "string"}}, PROMPT)
    assert value == ["[stand-in] Dana will ship the", "[stand-in] release notes on Friday"]
    assert instance_for({"type": "string"}, "") == "[stand-in] stand-in answer"
    assert instance_for({"type": "array", "items": {"type": "string"}}, PROMPT) == value, "deterministic"


def test_response_formats() -> None:
    assert answer_for({"type": "text"}, PROMPT) is None
    assert json.loads(answer_for({"type": "json_object"}, "hi") or "") == {"answer": "[stand-in] hi"}
    spec = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "required": ["n"]}}}
    assert json.loads(answer_for(spec, "hi") or "") == {"n": "[stand-in] hi"}
    assert json.loads(answer_for({"type": "json_schema"}, "hi") or "") == "[stand-in] hi", "no schema: any JSON"
