"""What the intake page may send, checked before anything is opened, and per-address limits.

A case request is ``{"items": [{"hashes": [{"type": "pdq", "value": ..., "quality": ...},
{"type": "md5", ...}, {"type": "sha256", ...}]}, ...]}``: one item per file, an image with
PDQ, MD5 and SHA-256, a video with MD5 and SHA-256. Only these three types are taken, and
only these keys, so a script cannot smuggle anything else (a file name, labels, a list)
through the page. Every fault names its field (``items[1].hashes[0].value``).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

from hashmesh.node.runtime.web import ApiError
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.records import HashEntry, Item

INTAKE_TYPES = ("pdq", "md5", "sha256")
REQUIRED_TYPES = frozenset({"md5", "sha256"})
REFERENCE_MAX = 64
PIN_MAX = 32


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "BAD_JSON", "the body is not JSON", "body") from None
    if not isinstance(value, dict):
        raise ApiError(400, "BAD_SCHEMA", "the body must be a JSON object", "body")
    return value


def _only(value: dict[str, Any], keys: set[str], path: str) -> None:
    for key in value:
        if key not in keys:
            where = f"{path}.{key}" if path else key
            raise ApiError(400, "BAD_SCHEMA", f"{where}: unknown field", where)


def parse_case_request(body: bytes, list_name: str, max_hashes: int) -> list[Item]:
    """The items of a case request, each a ``victim_submitted`` item of ``list_name``."""
    request = _json_object(body)
    _only(request, {"items"}, "")
    raw_items = request.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise ApiError(400, "BAD_SCHEMA", "items: must be a non-empty list", "items")
    total = sum(len(i.get("hashes", [])) if isinstance(i, dict) and
                isinstance(i.get("hashes"), list) else 0 for i in raw_items)
    if total > max_hashes:
        raise ApiError(400, "TOO_MANY_HASHES", f"items: {total} hashes; a case can hold at "
                       f"most {max_hashes}", "items")
    items: list[Item] = []
    for index, raw in enumerate(raw_items):
        path = f"items[{index}]"
        if not isinstance(raw, dict):
            raise ApiError(400, "BAD_SCHEMA", f"{path}: must be an object", path)
        _only(raw, {"hashes"}, path)
        hashes = raw.get("hashes")
        if not isinstance(hashes, list) or not hashes:
            raise ApiError(400, "BAD_SCHEMA", f"{path}.hashes: must be a non-empty list",
                           f"{path}.hashes")
        entries = []
        for h_index, entry in enumerate(hashes):
            h_path = f"{path}.hashes[{h_index}]"
            if isinstance(entry, dict) and entry.get("type") not in INTAKE_TYPES:
                raise ApiError(400, "BAD_SCHEMA", f"{h_path}.type: must be one of "
                               f"{', '.join(INTAKE_TYPES)}", f"{h_path}.type")
            try:
                entries.append(HashEntry.from_json(entry, h_path))
            except ProtocolError as exc:
                raise ApiError(400, exc.code, str(exc), exc.path or h_path) from None
        types = [e.type for e in entries]
        if len(set(types)) != len(types) or not REQUIRED_TYPES <= set(types):
            raise ApiError(400, "BAD_SCHEMA", f"{path}.hashes: one md5 and one sha256, and at "
                           "most one pdq, are needed", f"{path}.hashes")
        items.append(Item(hashes=tuple(entries), list=list_name))
    return items


def parse_reference_request(body: bytes) -> tuple[str, str, str]:
    """``{"reference": ..., "pin": ..., "lang": ...}`` -> (reference, pin, lang)."""
    request = _json_object(body)
    _only(request, {"reference", "pin", "lang"}, "")
    fields = []
    for name, limit in (("reference", REFERENCE_MAX), ("pin", PIN_MAX), ("lang", 8)):
        value = request.get(name, "en" if name == "lang" else None)
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise ApiError(400, "BAD_SCHEMA", f"{name}: must be text of 1 to {limit} "
                           "characters", name)
        fields.append(value.strip())
    return fields[0], fields[1], fields[2]


class RateLimit:
    """At most ``limit`` events per ``window`` seconds per address (a fixed window each),
    remembering at most ``max_addresses`` addresses (the oldest are forgotten first)."""

    def __init__(self, limit: int, window: float, max_addresses: int = 100_000) -> None:
        self.limit, self.window, self.max_addresses = limit, window, max_addresses
        self.windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def hit(self, address: str) -> int:
        """Count one event; 0 if allowed, else the seconds until the address may try again."""
        now = time.monotonic()
        start, count = self.windows.pop(address, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self.windows[address] = (start, count + 1)
        while len(self.windows) > self.max_addresses:
            self.windows.popitem(last=False)
        if count + 1 > self.limit:
            return max(1, int(self.window - (now - start)) + 1)
        return 0
