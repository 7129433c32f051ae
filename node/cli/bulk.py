"""``hashmesh add --from LIST``: a hash list into the running node, in large batches.

The list is read and validated here (``node/cli/hashlists.py``), then sent as
``POST /v1/records`` requests of ``limits.max_add_items`` items, or fewer where the body would
exceed ``limits.max_body_bytes`` (the node says both in ``/v1/status``; an older node says
only ``max_batch``, which then applies), two requests in flight so that reading and encoding
the next batch overlaps the node's signing and storing of this one. The node signs the items
into records of up to 256 items each, as for any add. A progress bar shows hashes sent (on a
terminal only).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from hashmesh.node.cli.client import LocalClient
from hashmesh.node.cli.hashlists import ListEntry, ReadStats, read_hash_list
from hashmesh.node.cli.support import CliError, progress_bar

DEFAULT_BATCH = 1000
DEFAULT_BODY_BYTES = 1_048_576
# what ``encode_request`` writes around an item's type and value, beside prefix and suffix
_ITEM_OVERHEAD = len('{"type":"","value":""},')
IN_FLIGHT = 2


def add_from_list(args: argparse.Namespace, client: LocalClient, template: dict[str, Any],
                  dist: dict[str, Any]) -> dict[str, Any]:
    """Add every hash of ``args.from_file``; return what was added."""
    path = args.from_file
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    status = client.call("GET", "/v1/status")
    limits = status.get("limits") or {}
    batch_size = int(limits.get("max_add_items", limits.get("max_batch", DEFAULT_BATCH)))
    body_bytes = int(limits.get("max_body_bytes", DEFAULT_BODY_BYTES))
    default_list = (status.get("lists") or {}).get("default")
    prefix, suffix = item_affixes(template, default_list)
    stats = ReadStats()
    entries = read_hash_list(path, args.default_type, stats)
    added = records = 0
    seqs: list[int] = []
    pending: list[tuple[Future[Any], int]] = []
    with ThreadPoolExecutor(IN_FLIGHT) as pool, \
            progress_bar(None, "hash", "add", wanted=not args.no_progress) as bar:
        for batch in _batches(entries, batch_size,
                              body_bytes - _envelope_bytes(dist),
                              len(prefix.encode()) + len(suffix.encode())):
            body = encode_request(batch, prefix, suffix, dist)
            pending.append((pool.submit(client.call, "POST", "/v1/records", data=body,
                                        content_type="application/json"), len(batch)))
            while len(pending) >= IN_FLIGHT:
                future, count = pending.pop(0)
                answer = future.result()  # a refused batch stops here, naming its error
                added, records = added + count, records + len(answer["records"])
                seqs += [r["seq"] for r in answer["records"]]
                bar.update(count)
        for future, count in pending:
            answer = future.result()
            added, records = added + count, records + len(answer["records"])
            seqs += [r["seq"] for r in answer["records"]]
            bar.update(count)
    return {"added": added, "records": records,
            "seqs": [min(seqs), max(seqs)] if seqs else [],
            "skipped_withdrawn": stats.skipped_withdrawn, "from": str(path)}


def item_affixes(template: dict[str, Any], default_list: str | None) -> tuple[str, str]:
    """The text around each item's hashes, in canonical key order (expires, hashes, labels,
    list, tier), so that the node reads the batch on its fast path (``read_add_fast``).

    Values are written as given: a bad label or list is the node's to refuse, by name.
    """
    fields = dict(template)
    if not fields.get("labels"):
        fields.pop("labels", None)
    if "list" not in fields and default_list is not None:
        fields["list"] = default_list
    before = {k: v for k, v in fields.items() if k < "hashes"}
    after = {k: v for k, v in fields.items() if k > "hashes"}
    prefix = _compact(before)[:-1] + ("," if before else "") + '"hashes":['
    suffix = "]" + ("," + _compact(after)[1:] if after else "}")
    return prefix, suffix


def encode_request(batch: list[ListEntry], prefix: str, suffix: str,
                   dist: dict[str, Any]) -> bytes:
    """``{"dist":{...},"items":[...]}`` with each item written as the node's records hold it."""
    items = ",".join(f'{prefix}{{"type":"{e.type}","value":"{e.value}"}}{suffix}'
                     for e in batch)
    return f'{{"dist":{_compact(dist)},"items":[{items}]}}'.encode()


def _compact(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _envelope_bytes(dist: dict[str, Any]) -> int:
    return len(f'{{"dist":{_compact(dist)},"items":[]}}'.encode())


def _batches(entries: Iterator[ListEntry], size: int, budget: int,
             affixes: int) -> Iterator[list[ListEntry]]:
    """Batches of at most ``size`` entries whose items take at most ``budget`` bytes as
    ``encode_request`` writes them (a single larger item goes alone: the node names it)."""
    batch: list[ListEntry] = []
    used = 0
    for entry in entries:
        length = affixes + _ITEM_OVERHEAD + len(entry.type) + (
            len(entry.value) if entry.value.isascii() else len(entry.value.encode()))
        if batch and (len(batch) >= size or used + length > budget):
            yield batch
            batch, used = [], 0
        batch.append(entry)
        used += length
    if batch:
        yield batch
