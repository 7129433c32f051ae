"""The strict RFC 8941 subset: what it parses, and that it refuses rather than interprets.

The signature profile's own tests (``test_httpsig.py``) reach the parser through real
headers; these pin the parser's contract directly so it can change without a signed request.
"""

from __future__ import annotations

import pytest

from hashmesh.node.federation.structured_fields import (
    SFError,
    Token,
    parse_dictionary,
    serialise_bare_item,
    serialise_string,
)


def test_parses_items_inner_lists_and_parameters() -> None:
    parsed = parse_dictionary('a=1, b="x\\"y";p=?0, c=(t1 "s");q=:AAE=:, d')
    assert parsed == {
        "a": (1, {}),
        "b": ('x"y', {"p": False}),
        "c": ([("t1", {}), ("s", {})], {"q": b"\x00\x01"}),
        "d": (True, {}),
    }


def test_tokens_are_kept_apart_from_strings() -> None:
    parsed = parse_dictionary('t=ed25519, s="ed25519"')
    token, string = parsed["t"][0], parsed["s"][0]
    assert type(token) is Token and token == "ed25519"
    assert type(string) is str


@pytest.mark.parametrize(("text", "message"), [
    ("a=1, a=2", "no duplicate key (found 'a' twice)"),
    ("a=1;p;p", "no duplicate parameter (found 'p' twice)"),
    ("a=1.5", "decimals are not used"),
    ("a=1234567890123456", "an integer of at most 15 digits"),
    ("a=:AAE:", "canonical padded base64"),
    ('a="\x01"', "a printable ASCII character in a string"),
    ("a=1,", "a member after ','"),
    ("A=1", "a key (lowercase letter or '*')"),
    ("a=@1", "an integer, string, token, byte sequence or boolean"),
])
def test_refuses_outside_the_subset(text: str, message: str) -> None:
    with pytest.raises(SFError, match="expected") as info:
        parse_dictionary(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_error_names_the_offset() -> None:
    with pytest.raises(SFError, match=r"^expected ',' between members at offset 4, found ';'$"):
        parse_dictionary("a=1 ;")


def test_serialises_strings_and_integers() -> None:
    assert serialise_string('a"b\\c') == '"a\\"b\\\\c"'
    assert serialise_bare_item(-42) == "-42"
    assert serialise_bare_item("x") == '"x"'


@pytest.mark.parametrize(("value", "error"), [
    ("é", ValueError), (10**15, ValueError), (True, TypeError), (b"x", TypeError),
])
def test_serialise_refuses_what_it_cannot_write(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        serialise_bare_item(value)  # type: ignore[arg-type]
