"""Reading TOML config files under a schema, with every fault located for the operator.

Shared by ``node/config/node.py`` (``node.toml``) and ``node/config/peers.py`` (``peers.toml``):
``Table`` reads one table, checks it for unknown keys (with a "did you mean" hint) and
raises ``ConfigError`` naming the file and the field, as in
``node.toml: listen.port: must be an integer between 1 and 65535, got 70000``.
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tomli_w

from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.keys import PublicKey

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 200


class ConfigError(ValueError):
    """A configuration fault, located by ``file`` (as the operator named it) and ``path``.

    ``path`` is the field location inside the file (``peer[2].url``); ``reason`` says what
    is wrong. Validation code raises it without ``file``; the loader adds the file name.
    """

    def __init__(self, message: str, path: str = "", file: str | os.PathLike[str] | None = None
                 ) -> None:
        self.reason = message
        self.path = path
        self.file = None if file is None else str(file)
        super().__init__(": ".join(part for part in (self.file, path, message) if part))

    def in_file(self, file: str | os.PathLike[str]) -> ConfigError:
        """The same fault, located in ``file``."""
        return ConfigError(self.reason, self.path, file)


def toml_value(value: object) -> str:
    """One value in TOML syntax, escaped by tomli_w."""
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


# --- reading TOML -------------------------------------------------------------------------

def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", "", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", "", path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 (at byte {exc.start})", "", path) from None


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", "", path) from None


def read_toml(path: Path) -> dict[str, Any]:
    return parse_toml(read_text(path), path)


def check_unused(used: list[str], value: str, path: str, what: str) -> None:
    if value in used:
        raise ConfigError(f"duplicate {what} {value!r:.80}", path)


def check_first(seen: dict[str, int], value: str, index: int, path: str, what: str) -> None:
    """Record ``value`` at ``index``; a second use is an error pointing at the first."""
    if value in seen:
        raise ConfigError(f"duplicate {what} {value!r:.80} (already used by peer[{seen[value]}])",
                          path)
    seen[value] = index


MISSING: Any = object()


def type_name(value: object) -> str:
    """A TOML value's type with its article, as an operator reading the error would say it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return "a date/time"
    return type(value).__name__


class Table:
    """One TOML table being read under a schema; every read and every error is located.

    Unknown keys are rejected on construction, so a misspelt required key is reported as the
    typo it is ("unknown key 'prot', did you mean 'port'?") rather than as a missing key.
    """

    def __init__(self, value: object, path: str, known: Iterable[str], what: str = "key"
                 ) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"must be a table, got {type_name(value)}", path)
        self._value: dict[str, Any] = value
        self.path = path
        allowed = frozenset(known)
        for key in value:
            if key not in allowed:
                raise ConfigError(unknown_key_message(key, allowed, what), self.at(key))

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self._value

    def keys(self) -> list[str]:
        return list(self._value)

    def get(self, key: str) -> Any:
        return self._value.get(key, MISSING)

    def _raw(self, key: str, default: Any) -> Any:
        if key in self._value:
            return self._value[key]
        if default is MISSING:
            raise ConfigError("missing required key", self.at(key))
        return default

    def table(self, key: str, known: Iterable[str] | None, *, required: bool = False) -> Table:
        """A sub-table (an empty one when absent and not ``required``)."""
        value = self._raw(key, MISSING if required else {})
        if known is None:
            known = value.keys() if isinstance(value, dict) else ()
        return Table(value, self.at(key), known)

    def tables(self, key: str, known: Iterable[str]) -> list[Table]:
        """An array of tables (``[[key]]``), each checked against ``known``."""
        value = self._raw(key, [])
        if not isinstance(value, list):
            raise ConfigError(f"must be an array of tables ([[{self.at(key)}]]), "
                              f"got {type_name(value)}", self.at(key))
        return [Table(entry, f"{self.at(key)}[{i}]", known) for i, entry in enumerate(value)]

    def string(self, key: str, *, pattern: re.Pattern[str] | None = None, what: str = "value",
               default: Any = MISSING) -> str:
        return check_string(self._raw(key, default), self.at(key), pattern, what)

    def display_name(self, key: str) -> str:
        value = self.string(key)
        if not value.strip() or len(value) > MAX_NAME_LENGTH or CONTROL_CHARS.search(value):
            raise ConfigError(f"must be 1 to {MAX_NAME_LENGTH} printable characters",
                              self.at(key))
        return value

    def boolean(self, key: str, *, default: Any = MISSING) -> bool:
        value = self._raw(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, got {type_name(value)}", self.at(key))
        return value

    def integer(self, key: str, minimum: int, maximum: int, *, default: Any = MISSING) -> int:
        value = self._raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            got = type_name(value)
        elif not minimum <= value <= maximum:
            got = str(value)
        else:
            return value
        raise ConfigError(f"must be an integer between {minimum} and {maximum}, got {got}",
                          self.at(key))

    def file_path(self, key: str, base_dir: Path, *, default: Any = MISSING) -> Path:
        """A file path, resolved against the config file's directory when relative."""
        value = self._raw(key, default)
        if isinstance(value, Path):
            return value
        text = check_string(value, self.at(key), None, "path")
        if not text or "\x00" in text:
            raise ConfigError("must be a non-empty path", self.at(key))
        return base_dir / text

    def strings(self, key: str, *, pattern: re.Pattern[str] | None = None, what: str = "value",
                choices: frozenset[str] | None = None, min_length: int = 0,
                default: tuple[str, ...] | None = ()) -> tuple[str, ...]:
        """An array of distinct strings; ``default`` when absent (``None``: required)."""
        if key not in self._value:
            if default is None:
                raise ConfigError("missing required key", self.at(key))
            return default
        return self._string_array(key, pattern, what, choices, min_length)

    def optional_strings(self, key: str, *, pattern: re.Pattern[str] | None = None,
                         what: str = "value") -> tuple[str, ...] | None:
        """An array of distinct strings, or ``None`` when absent (meaning "all")."""
        if key not in self._value:
            return None
        return self._string_array(key, pattern, what, None, 0)

    def _string_array(self, key: str, pattern: re.Pattern[str] | None, what: str,
                      choices: frozenset[str] | None, min_length: int) -> tuple[str, ...]:
        value = self._value[key]
        path = self.at(key)
        if not isinstance(value, list):
            raise ConfigError(f"must be an array of strings, got {type_name(value)}", path)
        if len(value) < min_length:
            raise ConfigError(f"needs at least {min_length} entries", path)
        items = tuple(check_string(item, f"{path}[{i}]", pattern, what)
                      for i, item in enumerate(value))
        for i, item in enumerate(items):
            if choices is not None and item not in choices:
                raise ConfigError(f"unknown value {item!r:.80} (expected one of: "
                                  f"{', '.join(sorted(choices))})", f"{path}[{i}]")
            if item in items[:i]:
                raise ConfigError(f"duplicate {what} {item!r:.80}", f"{path}[{i}]")
        return items

    def key(self, key: str) -> PublicKey:
        return check_key(self._raw(key, MISSING), self.at(key))

    def keys_list(self, key: str, *, hint: str) -> tuple[PublicKey, ...]:
        value = self._raw(key, MISSING)
        path = self.at(key)
        if not isinstance(value, list):
            raise ConfigError(f"must be {hint}, got {type_name(value)}", path)
        keys = tuple(check_key(item, f"{path}[{i}]") for i, item in enumerate(value))
        for i, item in enumerate(keys):
            if item in keys[:i]:
                raise ConfigError(f"duplicate key {item.id}", f"{path}[{i}]")
        return keys


def check_string(value: object, path: str, pattern: re.Pattern[str] | None, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, got {type_name(value)}", path)
    if pattern is not None and not pattern.fullmatch(value):
        raise ConfigError(f"invalid {what} {value!r:.80} (must match {pattern.pattern})", path)
    return value


def check_key(value: object, path: str) -> PublicKey:
    try:
        return PublicKey.from_id(value, path)
    except ProtocolError as exc:
        raise ConfigError(exc.reason, exc.path) from None


def unknown_key_message(key: str, known: frozenset[str], what: str) -> str:
    if key == "token":
        return ("unknown key 'token': store only the token's SHA-256, as 'sha256' "
                "(printf %s \"$TOKEN\" | sha256sum)")
    close = difflib.get_close_matches(key, sorted(known), n=1)
    if close:
        return f"unknown {what} {key!r:.80}, did you mean {close[0]!r}?"
    return f"unknown {what} {key!r:.80} (expected one of: {', '.join(sorted(known))})"
