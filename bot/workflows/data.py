"""Workflow data as it is kept in Postgres: typed values (dataclasses, pydantic models, anything pydantic reads) go
in as JSON, field by field, and come back out as the same type, so a replay sees what the first run saw."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

T = TypeVar("T")


# Building an adapter compiles a validator: once per type, not once per step.
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def codec(kind: type[T] | TypeAdapter[T]) -> TypeAdapter[T]:
    """The adapter for `kind`; an adapter given is used as it is (for unions and optionals, which are no `type`)."""
    if isinstance(kind, TypeAdapter):
        return kind
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    return adapter


def to_json(value: object) -> Any:
    """Any value as JSON, with no type to check it against: models and dataclasses become objects of their fields."""
    return to_jsonable_python(value)


def encode(kind: type[T] | TypeAdapter[T], value: object) -> Any:
    """Check `value` against `kind` (a dict of its fields will do) and turn it into JSON. Raises ValidationError."""
    adapter = codec(kind)
    return adapter.dump_python(adapter.validate_python(value), mode="json")


def decode(kind: type[T] | TypeAdapter[T], raw: Any) -> T:
    """Read stored JSON back as `kind`. Raises ValidationError."""
    return codec(kind).validate_python(raw)
