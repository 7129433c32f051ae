"""Canonical JSON: RFC 8785 (JCS) under hashmesh's strict value rules.

Signatures cover exact bytes, so every implementation must produce the same bytes for the
same record. JCS fixes key order, string escaping and number form; on top of it hashmesh
allows only the JSON values whose encoding cannot drift between languages:

* objects with ASCII string keys, arrays, strings, ``true``/``false``/``null``;
* integers with ``|n| < 2**53`` (no floats, no NaN/Infinity, no exponent forms);
* no duplicate keys.

``decode`` parses bytes under these rules and then insists that they re-encode to exactly
the same bytes, so a record has one and only one valid encoding.

On this restricted domain (ASCII keys, safe integers, no floats, valid Unicode strings) the
RFC 8785 encoding is exactly what the standard library's C encoder writes with sorted keys,
no whitespace and ``ensure_ascii=False``: the key order agrees because the keys are ASCII,
the escapes agree (both escape only ``"``, ``\\`` and U+0000..U+001F, with the same short
forms and lowercase ``\\u00xx``), and integers print the same. ``encode`` therefore uses that
encoder, which is about ten times faster than the pure-Python ``rfc8785`` package; the tests
hold the two to byte equality over generated values of the whole domain and over the
published vectors, with ``rfc8785`` as the reference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from hashmesh.protocol.errors import EncodingError, NonCanonicalError, OversizeError

MAX_SAFE_INTEGER = 2**53 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")

Json = dict[str, Any] | list[Any] | str | int | bool | None


def encode(value: object, path: str = "") -> bytes:
    """Encode ``value`` to canonical bytes, refusing anything outside the strict rules."""
    check_value(value, path)
    return encode_checked(value, path)


def encode_checked(value: object, path: str = "") -> bytes:
    """Canonical bytes of a value already known to be in the strict domain (e.g. parsed)."""
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except (TypeError, ValueError, UnicodeError) as exc:
        raise EncodingError(f"cannot be canonicalised: {exc}", path) from None


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True,
                            separators=(",", ":"))


def decode(data: bytes, *, max_bytes: int, path: str = "") -> dict[str, Any]:
    """Parse canonical bytes of one JSON object; raise a located error for anything else."""
    if len(data) > max_bytes:
        raise OversizeError(f"{len(data)} bytes exceeds the limit of {max_bytes}", path)
    value = parse(data, path)
    if not isinstance(value, dict):
        raise EncodingError(f"expected a JSON object, got {type_name(value)}", path)
    if encode(value, path) != data:
        raise NonCanonicalError("bytes are not in RFC 8785 canonical form", path)
    return value


def parse(data: bytes, path: str = "") -> Json:
    """Parse JSON strictly (UTF-8, no floats, no duplicate keys) without the canonical check."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EncodingError(f"not valid UTF-8 at byte {exc.start}", path) from None
    try:
        value = json.loads(text, object_pairs_hook=_strict_object, parse_int=_strict_int,
                           parse_float=_reject_float, parse_constant=_reject_constant)
    except _StrictJsonError as exc:
        raise _located(text, path, str(exc)) from None
    except json.JSONDecodeError as exc:
        raise EncodingError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                            path) from None
    except RecursionError:
        raise EncodingError("JSON nested too deeply", path) from None
    except ValueError as exc:
        raise EncodingError(f"malformed JSON: {exc}", path) from None
    if "\\u" in text and _ESCAPED_SURROGATE.search(text):
        check_value(value, path)
    return cast(Json, value)


def scan(text: str, start: int) -> tuple[Json, int]:
    """Parse the JSON value at ``text[start:]``: the value and the index just past it.

    For fast paths only: the value is *not* checked against the strict rules beyond refusing
    floats and NaN/Infinity (duplicate keys keep the last value, integers are unbounded), so
    the caller must prove canonical form and schema itself, e.g. by re-encoding. Raises
    ``ValueError`` on anything malformed.
    """
    value, end = _SCANNER.raw_decode(text, start)
    return cast(Json, value), end


def _not_a_float(text: str) -> float:
    raise ValueError(f"floats are not allowed ({text})")


_SCANNER = json.JSONDecoder(parse_float=_not_a_float, parse_constant=_not_a_float)


def _located(text: str, path: str, message: str) -> EncodingError:
    """The strict parse failed: find *where* with the slower walk, for a located error."""
    try:
        check_value(json.loads(text), path)
    except EncodingError as located:
        return located
    except ValueError:
        pass
    return EncodingError(message, path)


def check_value(value: object, path: str = "") -> None:
    """Raise ``EncodingError`` at the first value that hashmesh's JSON does not allow."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if not value.isascii() and _SURROGATE.search(value):
            raise EncodingError("string contains a lone surrogate (not a Unicode scalar value)",
                                path)
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise EncodingError("integer outside the safe range |n| < 2^53", path)
        return
    if isinstance(value, float):
        raise EncodingError("floats are not allowed; use an integer", path)
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise EncodingError(f"object key {key!r} is not an ASCII string", path)
            check_value(item, join(path, key))
        return
    if isinstance(value, Sequence):
        for index, item in enumerate(value):
            check_value(item, f"{path}[{index}]")
        return
    raise EncodingError(f"{type_name(value)} is not a JSON value", path)


def join(path: str, key: str) -> str:
    """Extend a field location: ``join("body", "items") == "body.items"``."""
    return f"{path}.{key}" if path else key


def type_name(value: object) -> str:
    """Name a JSON value's type as a person reading the error would: object, array, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


class _StrictJsonError(ValueError):
    pass


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _StrictJsonError(f"duplicate key {_first_duplicate(pairs)!r}")
    for key in result:
        if not key.isascii():
            raise _StrictJsonError(f"object key {key!r} is not an ASCII string")
    return result


def _first_duplicate(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    return ""


def _strict_int(text: str) -> int:
    number = int(text)
    if abs(number) > MAX_SAFE_INTEGER:
        raise _StrictJsonError("integer outside the safe range |n| < 2^53")
    return number


def _reject_float(text: str) -> float:
    raise _StrictJsonError(f"floats are not allowed ({text}); use an integer")


def _reject_constant(text: str) -> float:
    raise _StrictJsonError(f"{text} is not allowed")
