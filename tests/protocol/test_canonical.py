"""Canonical JSON: RFC 8785 bytes under hashmesh's strict value rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from hashmesh.protocol import canonical
from hashmesh.protocol.errors import EncodingError, NonCanonicalError, OversizeError
from tests.protocol.builders import PROPERTY

SAFE = canonical.MAX_SAFE_INTEGER

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=8), children,
                      max_size=5),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=8),
                               json_values, max_size=6)


@PROPERTY
@given(json_objects)
def test_decode_of_encode_returns_the_value_and_the_same_bytes(value: dict[str, Any]) -> None:
    data = canonical.encode(value)
    assert canonical.decode(data, max_bytes=len(data)) == value
    assert canonical.encode(canonical.decode(data, max_bytes=len(data))) == data


@PROPERTY
@given(json_objects)
def test_encode_agrees_with_rfc8785_and_with_json_parsers(value: dict[str, Any]) -> None:
    data = canonical.encode(value)
    assert data == rfc8785.dumps(value)
    assert json.loads(data) == value


@PROPERTY
@given(json_objects)
def test_any_reformatting_of_a_value_is_rejected_as_non_canonical(value: dict[str, Any]) -> None:
    data = canonical.encode(value)
    for variant in (json.dumps(value).encode(), json.dumps(value, indent=1).encode(),
                    json.dumps(value, sort_keys=True, ensure_ascii=True).encode()):
        if variant != data:
            with pytest.raises(NonCanonicalError):
                canonical.decode(variant, max_bytes=10**6)


def test_keys_are_sorted_and_non_ascii_text_is_not_escaped() -> None:
    assert canonical.encode({"b": 1, "a": [True, None], "B": 2}) == (
        b'{"B":2,"a":[true,null],"b":1}')
    assert canonical.encode({"s": "é\u2028\x1f"}) == '{"s":"é\u2028\\u001f"}'.encode()


@pytest.mark.parametrize("text", ["1.5", "1.0", "1e3", "-0.0", "NaN", "Infinity"])
def test_decode_rejects_every_non_integer_number(text: str) -> None:
    with pytest.raises(EncodingError) as info:
        canonical.decode(b'{"n":' + text.encode() + b"}", max_bytes=100)
    assert type(info.value) is EncodingError
    assert "not allowed" in info.value.reason


@pytest.mark.parametrize("number", [2**53, -(2**53), 10**30])
def test_decode_rejects_integers_outside_the_safe_range_at_their_path(number: int) -> None:
    with pytest.raises(EncodingError) as info:
        canonical.decode(b'{"a":{"n":[' + str(number).encode() + b"]}}", max_bytes=100)
    assert info.value.path == "a.n[0]"
    assert "safe range" in info.value.reason


def test_the_largest_safe_integers_are_accepted() -> None:
    for number in (SAFE, -SAFE):
        data = b'{"n":' + str(number).encode() + b"}"
        assert canonical.decode(data, max_bytes=100) == {"n": number}


def test_decode_rejects_duplicate_keys() -> None:
    with pytest.raises(EncodingError, match="duplicate key 'a'"):
        canonical.decode(b'{"a":1,"a":1}', max_bytes=100)


@pytest.mark.parametrize("data", [
    b'{"a": 1}', b'{"b":1,"a":2}', b'{"a":"\\u0061"}', b'{"a":"\\/"}', b'{"a":-0}',
    b'{"a":"\\u001F"}', b'{"a":1}\n', b' {"a":1}',
])
def test_decode_rejects_non_canonical_forms_of_valid_json(data: bytes) -> None:
    with pytest.raises(NonCanonicalError):
        canonical.decode(data, max_bytes=100)


def test_parse_rejects_non_ascii_object_keys() -> None:
    with pytest.raises(EncodingError, match="object key 'é' is not an ASCII string"):
        canonical.parse('{"é":1}'.encode())


def test_decode_rejects_input_over_the_limit_before_parsing() -> None:
    with pytest.raises(OversizeError, match="11 bytes exceeds the limit of 10"):
        canonical.decode(b'{"a":"xxx"}', max_bytes=10)


@pytest.mark.parametrize(("data", "fragment"), [
    (b'{"a":"\xff"}', "not valid UTF-8 at byte 6"),
    (b'{"a":"\\ud800"}', "lone surrogate"),
    (b'{"a":', "malformed JSON"),
    (b"[1]", "expected a JSON object, got array"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_decode_rejects_what_is_not_strict_json(data: bytes, fragment: str) -> None:
    with pytest.raises(EncodingError, match=fragment):
        canonical.decode(data, max_bytes=10**6)


@pytest.mark.parametrize(("value", "fragment"), [
    ({"n": 0.5}, "floats are not allowed"),
    ({"é": 1}, "not an ASCII string"),
    ({1: 1}, "not an ASCII string"),
    ({"s": {1, 2}}, "set is not a JSON value"),
    ({"s": "\udc00"}, "lone surrogate"),
])
def test_encode_refuses_values_outside_the_strict_rules(value: object, fragment: str) -> None:
    with pytest.raises(EncodingError, match=fragment):
        canonical.encode(value)
