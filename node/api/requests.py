"""Parsing the local API's JSON request bodies into protocol objects, with located errors.

Clients may send hash values in any case (``ABCD...``); they are normalised here with the
hash type's own ``validate`` before the strict record schema sees them, so a platform never
has to know hashmesh's normal form. Everything else is checked by the same schema code that
checks records from peers (``protocol.records``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hashmesh.node.matching.answers import HashQuery
from hashmesh.node.matching.image_query import TRANSFORMS
from hashmesh.node.matching.verdicts import MAX_CORROBORATION, Policy
from hashmesh.protocol import canonical
from hashmesh.protocol.errors import ProtocolError, SchemaError
from hashmesh.protocol.fields import Fields, check_integer, check_string
from hashmesh.protocol.hashtypes import get_hash_type
from hashmesh.protocol.item_runs import read_item_run
from hashmesh.protocol.records import (
    GROUP_ID_PATTERN,
    NAME_PATTERN,
    REASONS,
    VERDICTS,
    Distribution,
    Item,
    Target,
    read_canonical_items,
)


@dataclass(frozen=True)
class AddRequest:
    items: Sequence[Item]  # a list, or an ``ItemRun`` from ``read_add_fast``
    dist: Distribution


@dataclass(frozen=True)
class RevokeRequest:
    targets: list[Target]
    reason: str


@dataclass(frozen=True)
class FeedbackRequest:
    target: Target
    verdict: str
    note: str | None


@dataclass(frozen=True)
class MatchRequest:
    hashes: list[HashQuery]
    thresholds: dict[str, int]
    lists: frozenset[str] | None
    corroboration: int | None = None  # a stricter policy asked for (``Policy.stricter``)
    transforms: bool | None = None

    def policy(self, node: Policy) -> Policy:
        if self.corroboration is None and self.transforms is None:
            return node
        return node.stricter(self.corroboration, self.transforms)


def parse_add(value: object, *, max_batch: int, default_list: str,
              allowed_lists: tuple[str, ...],
              groups: Mapping[str, str] | None = None,
              limit_name: str = "[limits] max_add_items") -> AddRequest:
    """An add request; ``dist.group`` may be a local group name of ``groups`` (node.toml
    ``[groups]``), resolved here to its opaque id (SPEC §9.1), or an id itself. Beyond
    ``max_batch`` items the error names the setting behind it (``limit_name``)."""
    fields = Fields(value, "", frozenset({"items", "dist"}))
    raw_items = fields.array("items", min_length=1, max_length=max_batch,
                             beyond=f" (this node's {limit_name}): send them in several "
                             "requests")
    items = []
    for index, raw in enumerate(raw_items):
        path = f"items[{index}]"
        item = Item.from_json(_normalise_item(raw, default_list, path), path)
        if item.list not in allowed_lists:
            raise SchemaError(f"list {item.list!r} is not one of this node's lists "
                              f"({', '.join(allowed_lists)})", f"{path}.list")
        items.append(item)
    dist = (Distribution.from_json(resolve_group(fields.raw("dist"), groups or {}), "dist")
            if fields.has("dist") else Distribution())
    return AddRequest(items, dist)


def read_add_fast(body: bytes, *, max_batch: int,
                  allowed_lists: tuple[str, ...]) -> AddRequest | None:
    """The add request in ``body`` if its items are written in canonical form, else ``None``.

    ``hashmesh add --from`` writes ``{"dist":{...},"items":[...]}`` with every item canonical
    (lowercase values, ``list`` and ``tier`` given, no empty ``labels``), which the record
    fast path's patterns read in C (``read_canonical_items``) at ~1/15 of the cost of the
    strict parse and the schema walk. Items that differ only in their hash value (a list of
    one hash type, as ``add --from`` sends it) are read as one ``ItemRun``: a column of
    values, no object per item. The result equals the one ``parse_add`` gives for the same
    body; anything else, including every fault, goes to ``parse_add``, which says what is
    wrong (tests/node/test_bulk_requests.py holds the two equal).
    """
    if not body.isascii() or not body.endswith(b"]}"):
        return None
    text = body.decode("ascii")
    dist = Distribution()
    if text.startswith('{"items":['):
        start = 10
    elif text.startswith('{"dist":{'):
        start = text.find('},"items":[') + 11
        if start < 11:
            return None
        try:
            dist = Distribution.from_json(canonical.parse(body[8:start - 10]), "dist")
        except ProtocolError:
            return None
    else:
        return None
    region = text[start:-2]
    run = read_item_run(region)
    if run is not None:
        if len(run) > max_batch or run.template.list not in allowed_lists:
            return None
        return AddRequest(run, dist)
    items = read_canonical_items(region)
    if items is None or len(items) > max_batch:
        return None
    if any(item.list not in allowed_lists for item in items):
        return None
    return AddRequest(list(items), dist)


def resolve_group(dist: object, groups: Mapping[str, str]) -> object:
    """``dist`` with a group name replaced by its id; an unknown name is refused at
    ``dist.group`` (ids stay opaque on the wire: names never leave this node)."""
    if not isinstance(dist, dict) or not isinstance(dist.get("group"), str):
        return dist
    name = dist["group"]
    if name in groups:
        return {**dist, "group": groups[name]}
    if GROUP_ID_PATTERN.fullmatch(name):
        return dist
    known = ", ".join(sorted(groups)) or "none configured"
    raise SchemaError(f"unknown sharing group {name!r:.80}: node.toml [groups] maps local "
                      f"names to group ids (known: {known})", "dist.group")


def _normalise_item(raw: object, default_list: str, path: str) -> object:
    if not isinstance(raw, dict):
        return raw
    item: dict[str, Any] = dict(raw)
    item.setdefault("list", default_list)
    item.setdefault("tier", "victim_submitted")
    if item.get("labels") == []:
        del item["labels"]  # records omit empty optional arrays; clients need not know that
    hashes = item.get("hashes")
    if isinstance(hashes, list):
        item["hashes"] = [_normalise_hash(h, f"{path}.hashes[{i}]") for i, h in enumerate(hashes)]
    return item


def _normalise_hash(raw: object, path: str) -> object:
    if not isinstance(raw, dict) or "type" not in raw or "value" not in raw:
        return raw
    kind = get_hash_type(raw["type"], f"{path}.type")
    return {**raw, "value": kind.validate(raw["value"], f"{path}.value")}


def parse_revoke(value: object, *, max_batch: int) -> RevokeRequest:
    fields = Fields(value, "", frozenset({"targets", "reason"}))
    raw = fields.array("targets", min_length=1, max_length=min(max_batch, 256))
    targets = [_target(t, f"targets[{i}]") for i, t in enumerate(raw)]
    return RevokeRequest(targets, fields.choice("reason", REASONS))


def parse_feedback(value: object) -> FeedbackRequest:
    fields = Fields(value, "", frozenset({"target", "verdict", "note"}))
    return FeedbackRequest(
        target=_target(fields.raw("target"), "target"),
        verdict=fields.choice("verdict", VERDICTS),
        note=fields.optional_string("note", max_length=280),
    )


def _target(value: object, path: str) -> Target:
    return Target.parse_ref(check_string(value, path, max_length=80), path)


def parse_match(value: object, *, max_batch: int) -> MatchRequest:
    fields = Fields(value, "", frozenset({"hashes", "thresholds", "lists", "policy"}))
    raw = fields.array("hashes", min_length=1, max_length=max_batch)
    hashes = [parse_hash_query(h, f"hashes[{i}]") for i, h in enumerate(raw)]
    thresholds = parse_thresholds(fields.raw("thresholds") if fields.has("thresholds") else {},
                                  "thresholds")
    lists = parse_lists(fields.raw("lists"), "lists") if fields.has("lists") else None
    corroboration, transforms = (parse_policy(fields.raw("policy"), "policy")
                                 if fields.has("policy") else (None, None))
    return MatchRequest(hashes, thresholds, lists, corroboration, transforms)


def parse_policy(value: object, path: str) -> tuple[int | None, bool | None]:
    """``{"corroboration": 3, "transforms": false}``: a stricter verdict policy for one query
    (checked against the node's own by ``Policy.stricter``)."""
    fields = Fields(value, path, frozenset({"corroboration", "transforms"}))
    corroboration = (check_integer(fields.raw("corroboration"), fields.at("corroboration"),
                                   minimum=1, maximum=MAX_CORROBORATION)
                     if fields.has("corroboration") else None)
    transforms: bool | None = None
    if fields.has("transforms"):
        raw = fields.raw("transforms")
        if not isinstance(raw, bool):
            raise SchemaError("expected true or false", fields.at("transforms"))
        transforms = raw
    return corroboration, transforms


def parse_hash_query(value: object, path: str) -> HashQuery:
    if isinstance(value, str):
        kind_name, sep, hash_value = value.partition(":")
        if not sep:
            raise SchemaError("expected TYPE:VALUE or {\"type\", \"value\"}", path)
        value = {"type": kind_name, "value": hash_value}
    fields = Fields(value, path, frozenset({"type", "value", "transform"}))
    kind = get_hash_type(fields.raw("type"), fields.at("type"))
    normalised = kind.validate(fields.raw("value"), fields.at("value"))
    if not fields.has("transform"):
        return HashQuery(kind.name, normalised)
    transform = fields.choice("transform", frozenset(TRANSFORMS))
    if kind.name != "pdq":
        raise SchemaError("only pdq hashes may name a transform (the 64-bit types are looked "
                          "up on the image as given)", fields.at("transform"))
    return HashQuery(kind.name, normalised, transform)


def parse_thresholds(value: object, path: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise SchemaError("expected an object of hash type to threshold", path)
    result = {}
    for name, raw in value.items():
        kind = get_hash_type(name, f"{path}.{name}")
        result[kind.name] = check_integer(raw, f"{path}.{name}", maximum=kind.max_threshold)
    return result


def parse_lists(value: object, path: str) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        raise SchemaError("expected a non-empty array of list names", path)
    return frozenset(check_string(v, f"{path}[{i}]", pattern=NAME_PATTERN, what="list name")
                     for i, v in enumerate(value))
