"""The few rewrites that let the SQLite store's SQL run on PostgreSQL, pinned one by one
(``node/store/pg_dialect.py`` lists them; anything else must be an override)."""

from __future__ import annotations

import pytest

from hashmesh.node.store.pg_dialect import bulk_insert, translate


@pytest.mark.parametrize(("sqlite", "postgres"), [
    ("SELECT raw FROM records WHERE origin=? AND seq=?",
     "SELECT raw FROM records WHERE origin=%s AND seq=%s"),
    ("INSERT OR IGNORE INTO revoked (origin, ref) VALUES (?,?)",
     "INSERT INTO revoked (origin, ref) VALUES (%s,%s) ON CONFLICT DO NOTHING"),
    ("INSERT INTO cursors (peer, origin, seq) VALUES (?,?,?) ON CONFLICT(peer, origin) "
     "DO UPDATE SET seq=MAX(cursors.seq, excluded.seq)",
     "INSERT INTO cursors (peer, origin, seq) VALUES (%s,%s,%s) ON CONFLICT(peer, origin) "
     "DO UPDATE SET seq=GREATEST(cursors.seq, excluded.seq)"),
    ("UPDATE origins SET frozen_seq = MIN(COALESCE(origins.frozen_seq, excluded.frozen_seq), "
     "excluded.frozen_seq)",
     "UPDATE origins SET frozen_seq = LEAST(COALESCE(origins.frozen_seq, excluded.frozen_seq), "
     "excluded.frozen_seq)"),
    ("SELECT COALESCE(MAX(num), 0) FROM records", "SELECT COALESCE(MAX(num), 0) FROM records"),
    ("SELECT COUNT(*) FROM entries WHERE note LIKE '5%'",
     "SELECT COUNT(*) FROM entries WHERE note LIKE '5%%'"),
])
def test_sqlite_statements_become_their_postgresql_equivalents(sqlite: str,
                                                               postgres: str) -> None:
    assert translate(sqlite) == postgres


def test_insert_or_ignore_with_returning_has_no_translation() -> None:
    with pytest.raises(ValueError, match="no translation"):
        translate("INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING a")


def test_only_plain_multi_row_inserts_become_copy() -> None:
    assert bulk_insert("INSERT INTO entries (id, value) VALUES (?,?),(?,?),(?,?)") == (
        "COPY entries (id, value) FROM STDIN", 2)
    assert bulk_insert("INSERT INTO entries (id, value) VALUES (?,?)") is None  # one row
    assert bulk_insert("INSERT INTO t (a, b) VALUES (?,?),(?,?) ON CONFLICT DO NOTHING") is None
    assert bulk_insert("INSERT INTO t (a, b) VALUES (?,?),(?,?) RETURNING a") is None
