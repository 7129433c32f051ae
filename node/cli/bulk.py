"""``hashmesh add --from LIST``: a hash list into the running node, in large batches.

The list is read and validated here (``node/cli/hashlists.py``), then sent as
``POST /v1/records`` requests of ``limits.max_batch`` items (the node says its limit in
``/v1/status``), two requests in flight so that reading and encoding the next batch overlaps
the node's signing and storing of this one. The node signs the items into records of up to
256 items each, as for any add. A progress bar shows hashes sent (on a terminal only).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any

from hashmesh.node.cli.client import LocalClient
from hashmesh.node.cli.hashlists import ListEntry, ReadStats, read_hash_list
from hashmesh.node.cli.support import CliError, progress_bar

DEFAULT_BATCH = 1000
IN_FLIGHT = 2


def add_from_list(args: argparse.Namespace, client: LocalClient, template: dict[str, Any],
                  dist: dict[str, Any]) -> dict[str, Any]:
    """Add every hash of ``args.from_file``; return what was added."""
    path = args.from_file
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    status = client.call("GET", "/v1/status")
    batch_size = int((status.get("limits") or {}).get("max_batch", DEFAULT_BATCH))
    default_list = (status.get("lists") or {}).get("default")
    prefix, suffix = item_affixes(template, default_list)
    stats = ReadStats()
    entries = read_hash_list(path, args.default_type, stats)
    added = records = 0
    seqs: list[int] = []
    pending: list[tuple[Future[Any], int]] = []
    with ThreadPoolExecutor(IN_FLIGHT) as pool, \
            progress_bar(None, "hash", "add", wanted=not args.no_progress) as bar:
        for batch in _batches(entries, batch_size):
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


def _batches(entries: Iterator[ListEntry], size: int) -> Iterator[list[ListEntry]]:
    while batch := list(islice(entries, size)):
        yield batch
