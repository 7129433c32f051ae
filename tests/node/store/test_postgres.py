"""What only the PostgreSQL store has to show: several writers on one database, the database
refusing a second signer at one seq, and recovering from a lost connection.

All on a real server (``tests/pg.py``); "processes" are separate ``PostgresStore`` objects with
connections of their own, as separate processes have.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

import hashmesh.node.store.sqlite as sqlite_store
from hashmesh.node.config.node import redact_url as redact
from hashmesh.node.store.postgres import PostgresStore, SeqTakenError
from hashmesh.protocol.log import append
from tests.protocol.builders import ROOT, add_body, pdq_hex


def test_two_writers_on_one_database_sign_one_gapless_log(pg_url: str) -> None:
    """Two stores that both sign (two processes that both believe they lead) take turns on
    the write lock: every seq is signed once, none is skipped."""
    stores = [PostgresStore(pg_url), PostgresStore(pg_url)]
    errors: list[BaseException] = []

    def sign(store: PostgresStore, start: int) -> None:
        try:
            for n in range(start, start + 20):
                store.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(n)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sign, args=(s, 1000 * i)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        seqs = [row["seq"] for row in stores[0].log_rows(ROOT.id, 0, 100)]
        assert seqs == list(range(1, 41))
        head = stores[1].head(ROOT.id)
        assert head is not None and head.seq == 40
    finally:
        for store in stores:
            store.close()


def test_the_database_refuses_a_second_record_at_a_signed_seq(pg_url: str) -> None:
    """Without the write lock, two signers that read the same head both sign seq 2; the unique
    index on (origin, seq) lets one commit and rolls the other back whole."""
    first = PostgresStore(pg_url, write_lock=False)
    second = PostgresStore(pg_url, write_lock=False)
    try:
        first.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(1)))
        both_read = threading.Barrier(2)
        original = sqlite_store._head
        waited = threading.local()

        def read_then_wait(conn: Any, origin: str) -> Any:
            head = original(conn, origin)
            if not getattr(waited, "done", False):  # the head signing starts from
                waited.done = True
                both_read.wait(timeout=30)  # both hold the same head before either inserts
            return head

        outcomes: list[Any] = []

        def sign(store: PostgresStore, n: int) -> None:
            try:
                outcomes.append(store.append_local(signer=ROOT, origin=ROOT.id,
                                                   body=add_body(pdq_hex(n)))[0])
            except SeqTakenError as exc:
                outcomes.append(exc)

        sqlite_store._head = read_then_wait
        try:
            threads = [threading.Thread(target=sign, args=(s, n))
                       for s, n in ((first, 2), (second, 3))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sqlite_store._head = original
        signed = [o for o in outcomes if not isinstance(o, Exception)]
        refused = [o for o in outcomes if isinstance(o, SeqTakenError)]
        assert len(signed) == 1 and len(refused) == 1
        assert signed[0].head.seq == 2
        assert first.record_at(ROOT.id, 2) == signed[0].raw
        assert [row["seq"] for row in first.log_rows(ROOT.id, 0, 10)] == [1, 2]
        assert first.counts()["hashes_active"] == 2  # the refused record's entry is gone too
        # and a record signed at a held seq by hand is refused by the database itself
        head = first.head(ROOT.id)
        assert head is not None
        forged = append(None, signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(9)),
                        now_ms=1)
        with pytest.raises(SeqTakenError), first.transaction() as conn:
            conn.execute("INSERT INTO records (num, id, id_key, origin, seq, type, stub, raw) "
                         "VALUES (?,?,?,?,?,?,?,?)",
                         (99, forged.id, 0, ROOT.id, 1, "add", 0, forged.raw))
    finally:
        first.close()
        second.close()


def test_reads_and_writes_reconnect_after_a_lost_connection(pg_url: str,
                                                                   pg_server: str) -> None:
    store = PostgresStore(pg_url)
    try:
        store.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(1)))
        assert store.counts()["records"] == 1
        database = pg_url.rsplit("/", 1)[1].split("?")[0]

        def terminate() -> None:
            with psycopg.connect(pg_server, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = %s", (database,))

        terminate()  # a read runs again on a new connection
        assert store.counts()["records"] == 1
        terminate()  # a write finds out before it sends anything, and reconnects
        record, _ = store.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(2)))
        assert record.head.seq == 2
    finally:
        store.close()


def test_messages_never_carry_the_password() -> None:
    assert redact("postgresql://node:s3cret@db.example:5432/hashmesh") == \
        "postgresql://node:***@db.example:5432/hashmesh"
    assert redact("postgresql:///hashmesh?host=/run/pg") == "postgresql:///hashmesh?host=/run/pg"


def test_every_connection_has_timeouts_and_keepalives_unless_its_url_sets_them(
        pg_url: str) -> None:
    """A call to a server that vanished without closing the connection fails in seconds
    instead of blocking a follower's or the leader's thread (``CONNECTION_DEFAULTS``)."""
    from psycopg.conninfo import conninfo_to_dict

    from hashmesh.node.store.pg_dialect import CONNECTION_DEFAULTS, connect

    separator = "&" if "?" in pg_url else "?"
    with connect(pg_url + f"{separator}connect_timeout=9") as conn:
        settings = conninfo_to_dict(conn.info.dsn)
    assert settings["connect_timeout"] == "9"  # the URL's own setting wins
    assert all(settings[k] == v for k, v in CONNECTION_DEFAULTS.items() if k != "connect_timeout")
