"""Invariants checked after end-to-end scenarios: what a node holds, it matches."""

from __future__ import annotations

from hashmesh.node.service import NodeService


async def assert_index_matches_store(service: NodeService) -> None:
    """Every entry in force in the store is in the match index, and nothing else is
    (``hashmesh verify --index`` runs the same check against a running node)."""
    result = await service.check_index()
    assert result.ok, f"{service.config.name}: index differs from store: {result.to_json()}"


async def assert_matches_every_stored_hash(service: NodeService) -> None:
    """Without letting anything reach the index first: each hash in force in the store is
    matched now (an index that is only behind would be caught here too)."""
    rows = await service.store.read(lambda s: s.reader().execute(
        "SELECT id, hash_type, value FROM entries WHERE active=1 AND "
        "(expires IS NULL OR expires > strftime('%s','now') * 1000)").fetchall())
    unmatched = [entry_id for entry_id, hash_type, value in rows
                 if entry_id not in {found for found, _ in
                                     service.matcher.query(hash_type, value, 0)}]
    assert not unmatched, (f"{service.config.name}: {len(unmatched)} of {len(rows)} stored "
                           f"hashes do not match, e.g. entries {unmatched[:10]}")
