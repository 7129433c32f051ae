"""The store's checkpoint tables (SPEC §20): gossiped checkpoints and split-view proofs.

Both engines run these statements (``PostgresStore`` inherits them through ``Store``; the
PostgreSQL schema mirrors the tables in ``pg_dialect.py``)::

    checkpoints  origin, cid (SHA-256 hex of the checkpoint's signed bytes ``C``), seq, ts,
                 raw (the checkpoint with every cosignature merged so far), received_at
                 (ms, when this node first held it: the "behind" alarm measures from there)
    split_views  origin, seq, cid, record_id (the id this node holds at seq), proof (JSON),
                 created_at

The federation code decides what to keep (merging cosignatures, pruning an origin to its
newest witnessed checkpoint and the few newer ones); these methods only read and write rows.
Tables are created when the node opens a database of schema version 2 that lacks them, as
the change log is, so no migration step is needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

CHECKPOINT_TABLES_SQL = (
    "CREATE TABLE IF NOT EXISTS checkpoints (origin TEXT NOT NULL, cid TEXT NOT NULL, "
    "seq INTEGER NOT NULL, ts INTEGER NOT NULL, raw TEXT NOT NULL, received_at INTEGER NOT NULL, "
    "PRIMARY KEY (origin, cid))",
    "CREATE TABLE IF NOT EXISTS split_views (origin TEXT NOT NULL, seq INTEGER NOT NULL, "
    "cid TEXT NOT NULL, record_id TEXT NOT NULL, proof TEXT NOT NULL, created_at INTEGER NOT NULL, "
    "PRIMARY KEY (cid, record_id))",
)


class _Connection(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


class CheckpointTables:
    """Mixed into ``Store``: rows of ``checkpoints`` and ``split_views``."""

    def transaction(self) -> Any: ...  # provided by Store
    def reader(self) -> Any: ...  # provided by Store

    def save_checkpoint(self, origin: str, cid: str, seq: int, ts: int, raw: bytes,
                        now: int) -> None:
        """Insert a checkpoint, or replace the stored one's bytes (more cosignatures),
        keeping when it was first received."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO checkpoints (origin, cid, seq, ts, raw, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (origin, cid) DO UPDATE SET raw = "
                "excluded.raw", (origin, cid, seq, ts, raw.decode("utf-8"), now))

    def delete_checkpoints(self, origin: str, cids: Iterable[str]) -> None:
        with self.transaction() as conn:
            for cid in cids:
                conn.execute("DELETE FROM checkpoints WHERE origin = ? AND cid = ?",
                             (origin, cid))

    def checkpoints_of(self, origin: str) -> list[tuple[bytes, int]]:
        """``(raw, received_at)`` of ``origin``'s stored checkpoints, newest ``ts`` first."""
        rows = self.reader().execute(
            "SELECT raw, received_at FROM checkpoints WHERE origin = ? "
            "ORDER BY ts DESC, seq DESC, cid", (origin,)).fetchall()
        return [(str(raw).encode("utf-8"), int(received)) for raw, received in rows]

    def all_checkpoints(self) -> list[tuple[str, bytes, int]]:
        """``(origin, raw, received_at)`` of every stored checkpoint, by origin, newest first."""
        rows = self.reader().execute(
            "SELECT origin, raw, received_at FROM checkpoints "
            "ORDER BY origin, ts DESC, seq DESC, cid").fetchall()
        return [(str(origin), str(raw).encode("utf-8"), int(received))
                for origin, raw, received in rows]

    def add_split_view(self, origin: str, seq: int, cid: str, record_id: str,
                       proof: dict[str, Any], now: int) -> bool:
        """Keep a split-view proof; ``False`` if it was already held."""
        with self.transaction() as conn:
            held = conn.execute("SELECT 1 FROM split_views WHERE cid = ? AND record_id = ?",
                                (cid, record_id)).fetchone()
            if held is not None:
                return False
            conn.execute(
                "INSERT INTO split_views (origin, seq, cid, record_id, proof, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (origin, seq, cid, record_id, json.dumps(proof, sort_keys=True), now))
            return True

    def split_views(self) -> list[dict[str, Any]]:
        rows = self.reader().execute(
            "SELECT proof FROM split_views ORDER BY created_at, cid, record_id").fetchall()
        return [json.loads(row[0]) for row in rows]
