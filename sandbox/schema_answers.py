"""JSON answers for the stand-in model when a request asks for JSON (`response_format`): a value built from the
schema so that it validates, with its strings taken from the prompt ("[stand-in] a few words of it"), so the
offline demo's JSON chain steps work and still show what they were given."""

from __future__ import annotations

import json
import re
from itertools import count
from typing import Any

DEFAULT_ITEMS = 2  # "a couple" of items when the schema does not say: enough to see a list is a list
FALLBACK_WORDS = ("stand-in", "answer")
WORDS_PER_STRING = 4
_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
_FORMATS = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T09:00:00Z",
    "time": "09:00:00",
    "email": "stand-in@example.com",
    "uri": "https://example.com/stand-in",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def answer_for(response_format: dict[str, Any], prompt_text: str) -> str | None:
    """The JSON text to answer with for an OpenAI `response_format`, or None when it does not ask for JSON."""
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return json.dumps(instance_for(schema if isinstance(schema, dict) else {}, prompt_text), ensure_ascii=False)
    if kind == "json_object":
        return json.dumps({"answer": Instances({}, prompt_text).text()}, ensure_ascii=False)
    return None


def instance_for(schema: dict[str, Any], prompt_text: str) -> Any:
    """A value that validates against `schema` for the common keywords (type, properties, required, items,
    min/maxItems, enum, const, min/max and exclusive bounds, multipleOf, min/maxLength, format, anyOf/oneOf/
    allOf, local $ref). A `pattern` is met only when one of a few plain candidates happens to match it."""
    return Instances(schema, prompt_text).build(schema)


class Instances:
    def __init__(self, root: dict[str, Any], prompt_text: str) -> None:
        self._root = root
        self._words = _WORD_RE.findall(prompt_text) or list(FALLBACK_WORDS)
        self._counter = count()

    def build(self, schema: Any, depth: int = 0) -> Any:
        if not isinstance(schema, dict) or depth > 20:
            return self.text()
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = [o for o in schema.get(key) or [] if isinstance(o, dict)]
            if options:
                usable = [o for o in options if self._resolve(o).get("type") != "null"] or options
                return self.build({**_without(schema, key), **usable[0]}, depth + 1)
        if isinstance(schema.get("allOf"), list):
            return self.build(_merge(_without(schema, "allOf"), *schema["allOf"]), depth + 1)
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind in ("number", "integer"):
            return self._number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema)

    def text(self, words: int = WORDS_PER_STRING) -> str:
        start = (next(self._counter) * words) % len(self._words)
        picked = [self._words[(start + i) % len(self._words)] for i in range(min(words, len(self._words)))]
        return "[stand-in] " + " ".join(picked)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: Any = self._root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return {**_without(schema, "$ref"), **target} if isinstance(target, dict) else schema

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        found = schema.get("properties")
        properties: dict[str, Any] = found if isinstance(found, dict) else {}
        required = [name for name in schema.get("required") or [] if isinstance(name, str)]
        # Filled in name order, not the schema's: a schema read back from Postgres (JSONB) has its keys reordered,
        # and a replayed chain step must get the same answer as the first run did.
        value = {name: self.build(properties[name], depth + 1) for name in sorted(properties)}
        for name in required:
            value.setdefault(name, self.text())
        return value

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        found = schema.get("prefixItems")
        prefix: list[Any] = found if isinstance(found, list) else []
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 3)))
        size = max(low, min(high, max(DEFAULT_ITEMS, len(prefix))))
        items = [self.build(sub, depth + 1) for sub in prefix[:size]]
        item_schema = schema.get("items", {})
        while len(items) < size:
            items.append(self.build(item_schema if isinstance(item_schema, dict) else {}, depth + 1))
        return items

    def _number(self, schema: dict[str, Any], *, integer: bool) -> int | float:
        low = _bound(schema, "minimum", "exclusiveMinimum", 1)
        high = _bound(schema, "maximum", "exclusiveMaximum", -1)
        # Successive numbers differ (0, 1, 2 ...) so lists of them look like lists, and stay within bounds.
        value = (low if low is not None else 0) + next(self._counter) % 10
        if high is not None and value > high:
            value = high if low is None else max(low, high)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            value = -(-value // step) * step  # the first multiple at or above the value
        return int(value) if integer else value

    def _string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        text = _FORMATS[fmt] if fmt in _FORMATS else self.text()
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            plain = " ".join(word.lower() for word in _WORD_RE.findall(text) if word.lower() != "stand-in")
            for candidate in (text, text.lower(), f"stand-in {plain}", plain, "stand-in", "a"):
                if candidate and _matches(pattern, candidate):
                    text = candidate
                    break
        low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
        while len(text) < low:
            text += " " + self.text()
        if isinstance(high, int) and len(text) > high:
            text = text[:high].rstrip() if high > 0 else ""
            text += "." * (low - len(text))  # rstrip may have taken it under minLength
        return text


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, nudge: int) -> float | None:
    if isinstance(schema.get(inclusive), int | float):
        return float(schema[inclusive])
    if isinstance(schema.get(exclusive), int | float):
        return float(schema[exclusive]) + nudge
    return None


def _matches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _without(schema: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _merge(*schemas: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for schema in schemas:
        if not isinstance(schema, dict):
            continue
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged[key] = value
    return merged
