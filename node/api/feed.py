"""The change feed: ``GET /v1/changes?after=CURSOR&limit=N&list=L``, read scope.

What other tools (python-threatexchange and HMA through ``hashmesh.node.interop.pytx``,
TAXII clients through ``node/api/taxii.py``) follow to keep a copy of this node's lists: each
add, revoke, expiry and verdict of an item, in commit order, after a cursor. The cursor is
the change log's ``seq`` (``node/store/changes.py``), written in the same transaction as the
change, so a consumer that stores ``next`` and asks again neither skips nor repeats a change,
whatever order records came in from peers and across restarts of the node.

A revoke or an expiry is a *tombstone*: the item with ``"kind": "revoke"`` (or ``expire``)
and its hashes, so that a consumer keyed by item or by hash can drop it. Each change also
says whether its item is ``in_force`` now (not revoked, not expired): a consumer that keeps
only the current state may treat an add or a verdict of an item no longer in force as a
tombstone (its tombstone follows later in the log). ``quarantined`` says whether the node's
verdict policy (``[match] dispute_origins``, ``matching/verdicts.py``) holds the item as
``disputed`` now: ``not_ncii`` from enough origins, and no ``confirmed`` from its own. A
quarantine starts and ends with a ``verdict`` change of the item, so a consumer that keeps
only the current state drops an item whose change says ``in_force: false`` or
``quarantined: true``, and takes it back at a later change that says neither. (A change of
``dispute_origins`` or a frozen origin writes no change: consumers then refetch from 0.)
Pages are capped
(``MAX_LIMIT`` changes), so neither side holds more than a page. A page is built in chunks of
``runtime.pressure.CHUNK`` changes, each its own cursor-ordered read, and between chunks the
builder yields to match requests in flight (``runtime/pressure.py``): a fetch slows itself
rather than the node's matching.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from aiohttp import web

from hashmesh.node.api.routes import SERVICE_KEY
from hashmesh.node.matching.verdicts import Policy, dispute_state, standing_verdicts
from hashmesh.node.runtime.metrics import labelled
from hashmesh.node.runtime.pressure import CHUNK, PagePacer
from hashmesh.node.runtime.web import ApiError
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.records import NAME_PATTERN, FeedbackBody, RevokeBody, SignedRecord

DEFAULT_LIMIT = 1000
MAX_LIMIT = 5000
MAX_CURSOR = 2**63 - 1


@dataclass(frozen=True)
class FeedPage:
    """One page of changes (as JSON objects), the cursor after it and whether more follow."""

    changes: list[dict[str, Any]]
    next: int
    more: bool


def parse_cursor(value: str | None, field: str) -> int:
    """A cursor as the feed gives it: a decimal change number (0: from the start)."""
    if value is None or value == "":
        return 0
    if not value.isdigit() or len(value) > 19 or int(value) > MAX_CURSOR:
        raise ApiError(400, "BAD_CURSOR", f"{field}: not a cursor this feed gave (expected a "
                       f"decimal number, got {value[:40]!r})", field)
    return int(value)


def parse_limit(value: str | None, field: str, maximum: int = MAX_LIMIT,
                default: int = DEFAULT_LIMIT) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise ApiError(400, "BAD_LIMIT", f"{field}: expected an integer from 1 to {maximum}, "
                       f"got {value[:40]!r}", field)
    return int(value)


def parse_list_names(values: list[str], field: str) -> tuple[str, ...] | None:
    for value in values:
        if not NAME_PATTERN.fullmatch(value):
            raise ApiError(400, "BAD_FILTER", f"{field}: {value[:40]!r} is not a list name",
                           field)
    return tuple(sorted(set(values))) or None


def quarantined(store: Store, rows: list[tuple[Any, ...]], policy: Policy
                ) -> set[tuple[str, int]]:
    """``(record id, item)`` of the change rows' items that the verdict policy quarantines
    now (they answer ``disputed`` instead of ``match``)."""
    refs = {ref for row in rows for ref in (row[4], f"{row[4]}/{row[6]}")}
    verdicts = store.feedback_verdicts(refs) if refs else {}
    if not verdicts:
        return set()
    frozen = store.frozen()
    found = set()
    for row in rows:
        record_id, origin, item = row[4], row[5], row[6]
        standing = standing_verdicts(verdicts, record_id, item)
        if standing and dispute_state(standing, origin, frozen, policy).disputed:
            found.add((record_id, item))
    return found


def read_page(store: Store, after: int, limit: int, lists: tuple[str, ...] | None,
              policy: Policy | None = None) -> FeedPage:
    """A page of the change log as the feed's JSON objects (runs on a store reader thread).

    Raises ``ApiError`` for a cursor past the end of the log: it was not given by this
    node's log (a database restored from an older backup, another node), and following it
    would silently skip whatever is written up to it.
    """
    rows = store.changes_after(after, limit + 1, lists)
    if not rows and after > store.last_change():
        raise ApiError(400, "BAD_CURSOR", f"after: cursor {after} is past the end of this "
                       "node's change log (was the database restored? start again from 0)",
                       "after")
    more = len(rows) > limit
    rows = rows[:limit]
    makers = store.change_records(row[3] for row in rows if row[3] is not None)
    refs = {ref for row in rows for ref in (row[4], f"{row[4]}/{row[6]}")}
    verdicts = store.feedback_counts(refs) if refs else {}
    held = quarantined(store, rows, policy or Policy())
    changes = [_change_json(row, makers, verdicts, (row[4], row[6]) in held) for row in rows]
    return FeedPage(changes, rows[-1][0] if rows else after, more)


def _change_json(row: tuple[Any, ...], makers: dict[int, tuple[str, bytes]],
                 verdicts: dict[str, dict[str, int]], is_quarantined: bool) -> dict[str, Any]:
    seq, kind, ts, ref_num, record_id, origin, item, list_name, hashes, _ = row
    labels = list(_labels(hashes[0][3])) if hashes else []
    counts: dict[str, int] = {}
    for ref in (record_id, f"{record_id}/{item}"):
        for verdict, n in verdicts.get(ref, {}).items():
            counts[verdict] = counts.get(verdict, 0) + n
    now = time.time_ns() // 1_000_000
    in_force = bool(hashes) and all(h[6] and (h[5] is None or h[5] > now) for h in hashes)
    change: dict[str, Any] = {
        "cursor": str(seq), "kind": kind, "at": ts // 1000, "item": f"{record_id}/{item}",
        "record": record_id, "origin": origin, "list": list_name, "labels": labels,
        "tier": hashes[0][4] if hashes else None, "expires": hashes[0][5] if hashes else None,
        "hashes": [{"type": t, "value": v, **({"quality": q} if q is not None else {})}
                   for t, v, q, *_ in hashes],
        "verdicts": counts, "in_force": in_force, "quarantined": is_quarantined,
    }
    if ref_num is not None and ref_num in makers:
        maker_id, raw = makers[ref_num]
        change["by"] = maker_id
        body = SignedRecord.from_bytes(raw).body
        if isinstance(body, RevokeBody):
            change["reason"] = body.reason
        elif isinstance(body, FeedbackBody):
            change["verdict"] = body.verdict
            change["verdict_origin"] = SignedRecord.from_bytes(raw).head.origin
    return change


@lru_cache(maxsize=4096)
def _labels(text: str | None) -> tuple[str, ...]:
    """Labels as stored (JSON text): the same few arrays over and over."""
    return tuple(json.loads(text or "[]"))


async def changes(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    query = request.query
    for name in query:
        if name not in {"after", "limit", "list"}:
            raise ApiError(400, "UNKNOWN_FIELD", f"unknown query parameter {name!r}", name)
    after = parse_cursor(query.get("after"), "after")
    limit = parse_limit(query.get("limit"), "limit")
    lists = parse_list_names(query.getall("list", []), "list")
    policy = Policy.from_config(service.config.match)
    pacer = PagePacer(service.matching.pressure,
                      labelled(service.metrics.feed_yields, "changes").inc)
    parts: list[str] = []
    cursor, more, count = after, True, 0
    while more and count < limit:
        if count:
            await pacer.pause()  # matching goes first (``runtime/pressure.py``)
        read = partial(_read_chunk, after=cursor, limit=min(CHUNK, limit - count),
                       lists=lists, policy=policy)
        chunk, cursor, more, n = await service.store.read(read)
        if n:
            parts.append(chunk)
        count += n
    body = (f'{{"changes": [{", ".join(parts)}], "next": "{cursor}", '
            f'"more": {"true" if more else "false"}}}')
    return web.Response(body=body.encode(), content_type="application/json")


def _read_chunk(store: Store, *, after: int, limit: int, lists: tuple[str, ...] | None,
                policy: Policy) -> tuple[str, int, bool, int]:
    """A chunk of a page as JSON text (its changes, comma-separated), its cursor, whether more
    follow and how many changes it holds; encoded change by change on the reader thread."""
    page = read_page(store, after, limit, lists, policy)
    return ", ".join(json.dumps(c) for c in page.changes), page.next, page.more, \
        len(page.changes)


def add_feed_routes(app: web.Application) -> None:
    app.router.add_get("/v1/changes", changes, name="changes")
