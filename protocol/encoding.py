"""Canonical bytes of ``add`` bodies and heads without the generic canonicaliser.

A bulk add of 1M hashes signs ~4,000 records of 256 items. Through ``canonical.encode`` each
record was turned into dicts (``to_json``), walked value by value (``check_value``), encoded,
assembled twice and parsed back: ~40 µs a hash, most of a bulk add's cost. The records built
here have a fixed shape whose strings are all drawn from the protocol's own patterns (hex
hash values, list and label names, tiers, key ids, base64url salts), so their canonical form
(RFC 8785) is a plain template: keys in a fixed sorted order, no string that needs escaping,
integers in their shortest form.

Every function here *validates while it encodes*: a value outside the patterns (an item that
``Item.from_json`` would refuse, a string that would need escaping) returns ``None``, and the
caller takes the generic path (``canonical.encode`` and the strict round trip). So what the
fast path emits is always what the strict parser accepts; tests/protocol/test_encoding.py
holds it to byte equality with ``canonical.encode`` and to ``SignedRecord.from_bytes`` on
generated records.
"""

from __future__ import annotations

import re

from hashmesh.protocol.canonical import MAX_SAFE_INTEGER
from hashmesh.protocol.hashtypes import HASH_TYPES
from hashmesh.protocol.item_runs import ItemRun
from hashmesh.protocol.records import (
    GROUP_ID_PATTERN,
    JURISDICTION_PATTERN,
    LABEL_PATTERN,
    MAX_HASHES_PER_ITEM,
    MAX_ITEMS,
    MAX_JURISDICTIONS,
    MAX_LABELS,
    NAME_PATTERN,
    RECORD_ID_PATTERN,
    RECORD_TYPES,
    SALT_PATTERN,
    SCOPES,
    TIERS,
    VERSIONS,
    AddBody,
    Distribution,
    Head,
    Item,
    canonical_text,
)

_PDQ_NORMAL = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"ed25519:[A-Za-z0-9_-]{43}")
_TIER_TEXT = {tier: f'"tier":"{tier}"}}' for tier in TIERS}


def item_text(item: Item) -> str | None:
    """The canonical JSON text of a valid item, or ``None`` if any part of it is not valid
    (or not of the shapes this encoder knows). An item read from canonical text
    (``records.read_canonical_items``) gives that text back (~2 µs an item saved)."""
    known = canonical_text(item)
    if known is not None:
        return known
    hashes = item.hashes
    if len(hashes) == 1 and hashes[0].type == "pdq" and hashes[0].quality is None:
        value = hashes[0].value
        if _PDQ_NORMAL.fullmatch(value) is None:
            return None
        hash_text = '{"type":"pdq","value":"' + value + '"}'
    else:
        parts = _hash_texts(item)
        if parts is None:
            return None
        hash_text = parts
    tier = _TIER_TEXT.get(item.tier)
    if tier is None or NAME_PATTERN.fullmatch(item.list) is None:
        return None
    head = '{"hashes":[' if item.expires is None else _expires_text(item.expires)
    if head is None:
        return None
    if item.labels:
        labels = _labels_text(item.labels)
        if labels is None:
            return None
        return f'{head}{hash_text}],{labels}"list":"{item.list}",{tier}'
    return f'{head}{hash_text}],"list":"{item.list}",{tier}'


def item_size(item: Item) -> int | None:
    """The length of ``item_text(item)`` for an item of the usual shape (one PDQ hash, no
    labels, no expiry), computed without building or checking it; ``None`` for any other
    shape. Exact for every valid item of that shape (an invalid one is refused when signed),
    and for every item read from canonical ASCII text (``records.canonical_text``)."""
    known = canonical_text(item)
    if known is not None and known.isascii():
        return len(known)
    hashes = item.hashes
    if len(hashes) != 1 or item.labels or item.expires is not None:
        return None
    entry = hashes[0]
    if entry.type != "pdq" or entry.quality is not None:
        return None
    return _PDQ_ITEM_OVERHEAD + len(entry.value) + len(item.list) + len(item.tier)


_PDQ_ITEM_OVERHEAD = len('{"hashes":[{"type":"pdq","value":""}],"list":"","tier":""}')


def _expires_text(expires: object) -> str | None:
    if type(expires) is not int or not 0 <= expires <= MAX_SAFE_INTEGER:
        return None
    return f'{{"expires":{expires},"hashes":['


def _labels_text(labels: tuple[str, ...]) -> str | None:
    if len(labels) > MAX_LABELS or len(set(labels)) != len(labels):
        return None
    for label in labels:
        if not isinstance(label, str) or LABEL_PATTERN.fullmatch(label) is None:
            return None
    return '"labels":["' + '","'.join(labels) + '"],'


def _hash_texts(item: Item) -> str | None:
    hashes = item.hashes
    if not 1 <= len(hashes) <= MAX_HASHES_PER_ITEM or len({h.type for h in hashes}) != len(hashes):
        return None
    texts = []
    for entry in hashes:
        kind = HASH_TYPES.get(entry.type)
        if kind is None or not isinstance(entry.value, str):
            return None
        try:
            if kind.validate(entry.value) != entry.value:
                return None
        except ValueError:
            return None
        if entry.quality is None:
            texts.append(f'{{"type":"{entry.type}","value":"{entry.value}"}}')
        elif (entry.type == "pdq" and type(entry.quality) is int
              and 0 <= entry.quality <= 100):
            texts.append(f'{{"quality":{entry.quality},"type":"pdq","value":"{entry.value}"}}')
        else:
            return None
    return ",".join(texts)


def add_body_bytes(body: AddBody) -> bytes | None:
    """The canonical bytes of a v2 ``add`` body, or ``None`` if it is not one this encoder
    can prove valid (the caller then canonicalises ``body.to_json()``)."""
    if not 1 <= len(body.items) <= MAX_ITEMS or body.salt is None \
            or SALT_PATTERN.fullmatch(body.salt) is None:
        return None
    if isinstance(body.items, ItemRun):  # its text was proven canonical when it was read
        return ('{"items":[' + body.items.text() + '],"salt":"' + body.salt
                + '"}').encode("ascii")
    texts = []
    try:
        for item in body.items:
            text = item_text(item)
            if text is None:
                return None
            texts.append(text)
    except (TypeError, AttributeError):  # a field of the wrong type: the generic path says so
        return None
    return ('{"items":[' + ",".join(texts) + '],"salt":"' + body.salt + '"}').encode("ascii")


def head_bytes(head: Head) -> bytes | None:
    """The canonical bytes of a head whose fields are all valid, else ``None``."""
    try:
        return _head_bytes(head)
    except (TypeError, AttributeError):
        return None


def _head_bytes(head: Head) -> bytes | None:
    dist = _dist_text(head.dist)
    if (dist is None or head.v not in VERSIONS or head.type not in RECORD_TYPES
            or _KEY_ID.fullmatch(head.key) is None
            or _KEY_ID.fullmatch(head.origin) is None
            or RECORD_ID_PATTERN.fullmatch(head.digest) is None
            or type(head.seq) is not int or not 1 <= head.seq <= MAX_SAFE_INTEGER
            or type(head.ts) is not int or not 0 <= head.ts <= MAX_SAFE_INTEGER):
        return None
    if head.seq == 1:
        if head.prev is not None:
            return None
        prev = "null"
    elif head.prev is None or RECORD_ID_PATTERN.fullmatch(head.prev) is None:
        return None
    else:
        prev = f'"{head.prev}"'
    return (f'{{"digest":"{head.digest}","dist":{dist},"key":"{head.key}",'
            f'"origin":"{head.origin}","prev":{prev},"seq":{head.seq},"ts":{head.ts},'
            f'"type":"{head.type}","v":{head.v}}}').encode("ascii")


def _dist_text(dist: Distribution) -> str | None:
    if dist.scope not in SCOPES or (dist.scope == "group") != (dist.group is not None):
        return None
    parts = []
    if dist.group is not None:
        if GROUP_ID_PATTERN.fullmatch(dist.group) is None:
            return None
        parts.append(f'"group":"{dist.group}"')
    if dist.jurisdictions:
        codes = dist.jurisdictions
        if len(codes) > MAX_JURISDICTIONS or len(set(codes)) != len(codes) or any(
                JURISDICTION_PATTERN.fullmatch(code) is None for code in codes):
            return None
        parts.append('"jurisdictions":["' + '","'.join(codes) + '"]')
    parts.append(f'"scope":"{dist.scope}"')
    return "{" + ",".join(parts) + "}"
