"""Typed, located reading of decoded JSON objects.

Every schema check in ``protocol/records.py`` goes through ``Fields`` so that every
rejection names the exact field (``body.items[3].labels[0]``) and every unknown field is an
error rather than silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hashmesh.protocol.canonical import join, type_name
from hashmesh.protocol.errors import SchemaError, UnknownFieldError, UnknownTypeError

MAX_SAFE_INTEGER = 2**53 - 1


class Fields:
    """One JSON object being read under a schema, located at ``path``."""

    def __init__(self, value: object, path: str, allowed: frozenset[str]) -> None:
        if not isinstance(value, Mapping):
            raise SchemaError(f"expected an object, got {type_name(value)}", path)
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise UnknownFieldError(f"unknown field {unknown[0]!r}", join(path, unknown[0]))
        self.value: Mapping[str, Any] = value
        self.path = path

    def at(self, name: str) -> str:
        return join(self.path, name)

    def has(self, name: str) -> bool:
        return name in self.value

    def raw(self, name: str) -> object:
        if name not in self.value:
            raise SchemaError("missing required field", self.at(name))
        return self.value[name]

    def integer(self, name: str, *, minimum: int = 0, maximum: int = MAX_SAFE_INTEGER) -> int:
        return check_integer(self.raw(name), self.at(name), minimum=minimum, maximum=maximum)

    def optional_integer(self, name: str, *, minimum: int = 0,
                         maximum: int = MAX_SAFE_INTEGER) -> int | None:
        if name not in self.value:
            return None
        return self.integer(name, minimum=minimum, maximum=maximum)

    def string(self, name: str, *, pattern: re.Pattern[str] | None = None,
               max_length: int = 256, what: str = "value") -> str:
        return check_string(self.raw(name), self.at(name), pattern=pattern,
                            max_length=max_length, what=what)

    def optional_string(self, name: str, *, pattern: re.Pattern[str] | None = None,
                        max_length: int = 256, what: str = "value") -> str | None:
        if name not in self.value:
            return None
        return self.string(name, pattern=pattern, max_length=max_length, what=what)

    def choice(self, name: str, choices: frozenset[str]) -> str:
        return check_choice(self.raw(name), self.at(name), choices)

    def array(self, name: str, *, min_length: int = 0, max_length: int,
              beyond: str = "") -> list[Any]:
        """The array at ``name``; ``beyond`` ends the message of one over ``max_length``
        (what sets the limit, what to do)."""
        value = self.raw(name)
        path = self.at(name)
        if not isinstance(value, list):
            raise SchemaError(f"expected an array, got {type_name(value)}", path)
        if len(value) < min_length:
            noun = "entry" if min_length == 1 else "entries"
            raise SchemaError(f"needs at least {min_length} {noun}, got {len(value)}", path)
        if len(value) > max_length:
            raise SchemaError(f"at most {max_length} entries allowed, got {len(value)}{beyond}",
                              path)
        return value


def check_integer(value: object, path: str, *, minimum: int = 0,
                  maximum: int = MAX_SAFE_INTEGER) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"expected an integer, got {type_name(value)}", path)
    if not minimum <= value <= maximum:
        raise SchemaError(f"must be between {minimum} and {maximum}, got {value}", path)
    return value


def check_string(value: object, path: str, *, pattern: re.Pattern[str] | None = None,
                 max_length: int = 256, what: str = "value") -> str:
    if not isinstance(value, str):
        raise SchemaError(f"expected a string, got {type_name(value)}", path)
    if len(value) > max_length:
        raise SchemaError(f"at most {max_length} characters allowed, got {len(value)}", path)
    if pattern is not None and not pattern.fullmatch(value):
        raise SchemaError(f"invalid {what} {value!r:.80} (must match {pattern.pattern})", path)
    return value


def check_choice(value: object, path: str, choices: frozenset[str]) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"expected a string, got {type_name(value)}", path)
    if value not in choices:
        known = ", ".join(sorted(choices))
        raise UnknownTypeError(f"unknown value {value!r:.80} (expected one of: {known})", path)
    return value


def check_unique(values: list[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise SchemaError(f"duplicate {what} {value!r}", f"{path}[{index}]")
        seen.add(value)
