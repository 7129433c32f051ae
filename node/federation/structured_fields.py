"""A strict subset of RFC 8941 Structured Field Values, for the signature profile.

The hashmesh profile of RFC 9421 (``node.httpsig``) reads ``Signature-Input``, ``Signature``
and ``Content-Digest``, which are RFC 8941 Dictionaries. A header that two parsers read
differently is a way to sign one thing and have another verified, so this parser accepts
only what the profile needs and *refuses* everything else rather than interpreting it.

Covered:

- parsing a Dictionary (``parse_dictionary``): members that are items or inner lists, with
  parameters; bare items that are integers (at most 15 digits), strings (printable ASCII),
  tokens (kept apart from strings as ``Token``), byte sequences (canonical padded base64
  only) and booleans;
- serialising the bare items the signer writes (``serialise_string``,
  ``serialise_bare_item``): strings and integers.

Refused, with an ``SFError`` (a ``ValueError``) naming the offset: decimals, duplicate
dictionary keys or parameters (rather than RFC 8941's "last one wins", so a header cannot
say two things at once), non-canonical base64, and whatever does not follow RFC 8941's
grammar, including RFC 9651's Dates and Display Strings. Top-level Lists and Items are not
parsed: the profile has no such fields.
"""

from __future__ import annotations

import base64
import binascii


class Token(str):
    """An sf-token, kept apart from sf-string: ``alg=ed25519`` is not ``alg="ed25519"``."""

    __slots__ = ()


BareItem = int | str | bytes | bool
Params = dict[str, BareItem]
Item = tuple[BareItem, Params]
Member = tuple[BareItem | list[Item], Params]


class SFError(ValueError):
    """A field value outside the subset; a ``ValueError`` so callers need not import it."""


_KEY_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz*")
_KEY_REST = _KEY_FIRST | frozenset("0123456789_-.")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
_TCHAR = _ALPHA | _DIGITS | frozenset("!#$%&'*+-.^_`|~")
_BASE64 = _ALPHA | _DIGITS | frozenset("+/=")


class _Parser:
    """A recursive-descent reader over one field value; ``pos`` is the offset reached.

    Each method consumes one RFC 8941 construct from ``pos`` (RFC 8941 §4.2) and raises
    ``SFError`` via ``fail`` so every refusal names where it happened.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str) -> SFError:
        """The error to raise: what was expected, and where and what was found instead."""
        if self.pos >= len(self.text):
            return SFError(f"expected {expected} at end of value")
        return SFError(f"expected {expected} at offset {self.pos}, found {self.text[self.pos]!r}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.pos += 1

    def dictionary(self) -> dict[str, Member]:
        self.skip(" ")
        result: dict[str, Member] = {}
        while self.pos < len(self.text):
            start = self.pos
            key = self.key()
            if key in result:
                self.pos = start
                raise self.fail(f"no duplicate key (found {key!r} twice)")
            if self.peek() == "=":
                self.pos += 1
                result[key] = self.item_or_inner_list()
            else:
                result[key] = (True, self.parameters())
            self.skip(" \t")
            if self.pos == len(self.text):
                return result
            if self.peek() != ",":
                raise self.fail("',' between members")
            self.pos += 1
            self.skip(" \t")
            if self.pos == len(self.text):
                raise self.fail("a member after ','")
        return result

    def item_or_inner_list(self) -> Member:
        if self.peek() != "(":
            return self.item()
        self.pos += 1
        items: list[Item] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return items, self.parameters()
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise self.fail("' ' or ')' in inner list")

    def item(self) -> Item:
        return self.bare_item(), self.parameters()

    def parameters(self) -> Params:
        params: Params = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            start = self.pos
            key = self.key()
            if key in params:
                self.pos = start
                raise self.fail(f"no duplicate parameter (found {key!r} twice)")
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params[key] = value
        return params

    def key(self) -> str:
        start = self.pos
        if self.peek() not in _KEY_FIRST or not self.peek():
            raise self.fail("a key (lowercase letter or '*')")
        while self.peek() and self.peek() in _KEY_REST:
            self.pos += 1
        return self.text[start:self.pos]

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or (char and char in _DIGITS):
            return self.integer()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char == "*" or (char and char in _ALPHA):
            return self.token()
        raise self.fail("an integer, string, token, byte sequence or boolean")

    def integer(self) -> int:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        digits = self.pos
        while self.peek() and self.peek() in _DIGITS:
            self.pos += 1
        if self.pos == digits:
            raise self.fail("a digit")
        if self.pos - digits > 15:
            self.pos = start
            raise self.fail("an integer of at most 15 digits")
        if self.peek() == ".":
            raise self.fail("an integer (decimals are not used in this profile)")
        return int(self.text[start:self.pos])

    def string(self) -> str:
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                if self.peek() not in ('"', "\\") or not self.peek():
                    raise self.fail("'\"' or '\\\\' after '\\\\' in a string")
                chars.append(self.peek())
                self.pos += 1
            elif char == '"':
                return "".join(chars)
            elif not " " <= char <= "~":
                self.pos -= 1
                raise self.fail("a printable ASCII character in a string")
            else:
                chars.append(char)
        raise self.fail("'\"' to close the string")

    def token(self) -> Token:
        start = self.pos
        self.pos += 1
        while self.peek() and (self.peek() in _TCHAR or self.peek() in ":/"):
            self.pos += 1
        return Token(self.text[start:self.pos])

    def byte_sequence(self) -> bytes:
        self.pos += 1
        start = self.pos
        while self.peek() and self.peek() in _BASE64:
            self.pos += 1
        if self.peek() != ":":
            raise self.fail("':' to close the byte sequence")
        encoded = self.text[start:self.pos]
        self.pos += 1
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raw = None
        if raw is None or base64.b64encode(raw).decode("ascii") != encoded:
            self.pos = start
            raise self.fail("canonical padded base64 in the byte sequence")
        return raw

    def boolean(self) -> bool:
        self.pos += 1
        if self.peek() not in ("0", "1") or not self.peek():
            raise self.fail("'0' or '1' after '?'")
        self.pos += 1
        return self.text[self.pos - 1] == "1"


def parse_dictionary(text: str) -> dict[str, Member]:
    """Parse an RFC 8941 Dictionary strictly; raises ``ValueError`` naming the offset."""
    return _Parser(text).dictionary()


def serialise_string(value: str) -> str:
    """An sf-string; refuses non-printable ASCII rather than emit a value no parser accepts."""
    if not all(" " <= char <= "~" for char in value):
        raise ValueError(f"{value!r:.80} is not printable ASCII, so not an sf-string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialise_bare_item(value: int | str) -> str:
    """An sf-integer or sf-string: the only bare items the signature profile writes.

    ``bool`` is refused although it is an ``int``, so ``True`` is not written as ``1``.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"only integers and strings are serialised here, got {value!r:.80}")
    if isinstance(value, str):
        return serialise_string(value)
    if abs(value) >= 10**15:
        raise ValueError(f"integer {value} has more than 15 digits")
    return str(value)

