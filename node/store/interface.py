"""The one store interface of the node, and the factory that picks its backend.

Code above the store (service, federation, matching, api, cli) sees a ``NodeStore`` and never
asks which engine runs it, as synapse's storage classes never ask which ``BaseDatabaseEngine``
they run on. Two backends implement it:

* ``node/store/sqlite.py``, ``Store``: the embedded default, one file in ``node.data_dir``;
* ``node/store/postgres.py``, ``PostgresStore``: selected by ``[store] url = "postgresql://…"``
  in ``node.toml``, for a node that outgrows one machine.

Both keep the same semantics: exact signed bytes, the same derived tables, one transaction
that signs, inserts and advances the seq. The contract tests (``tests/node/store/``) run
against both.

``PostgresStore`` is a subclass of the SQLite ``Store``: the SQL of the derived tables is
shared (written in the subset both engines run, with the few differences translated by the
PostgreSQL connection, ``node/store/pg_dialect.py``), and the engine-specific parts
(connections, transactions, schema, bulk reads) are overridden. So ``AsyncStore`` and every
``Store``-typed caller take either; ``NodeStore`` spells out the methods callers may use
(never ``conn`` or ``transaction``), and mypy checks that both backends provide them.

The ``Changes``, ``EntryRow`` and error types are shared by both backends; they live in
``sqlite.py`` (where they were first defined) and are re-exported here.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from hashmesh.node.config.node import NodeConfig, redact_url
from hashmesh.node.store.errors import StoreUnavailableError
from hashmesh.node.store.lock import DataDirLock
from hashmesh.node.store.receipts import Owed, ReceiptFloodError, ReceiptRow
from hashmesh.node.store.sqlite import (
    AsyncStore,
    AuditRow,
    Changes,
    EntryRow,
    OriginFrozenError,
    Store,
    StoreError,
    database_identity,
)
from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.log import LogHead
from hashmesh.protocol.records import Body, Distribution, ReceiptBody, SignedRecord
from hashmesh.protocol.signing import KeyRing

if TYPE_CHECKING:  # psycopg is imported only by a node that uses PostgreSQL
    from hashmesh.node.store.cluster import Cluster

__all__ = ["AsyncStore", "Changes", "EntryRow", "NodeStore", "OriginFrozenError",
           "ReceiptFloodError", "ReceiptRow", "StoreError", "StoreUnavailableError",
           "open_async_store", "open_store", "store_identity"]


class NodeStore(Protocol):
    """What the node calls on its store. Writes run on one thread per process
    (``AsyncStore``); reads may run on several."""

    # -- writes (each one transaction) ---------------------------------------------------
    def append_local(self, *, signer: SigningKey, origin: str, body: Body,
                     dist: Distribution | None = None, actor: str = "local",
                     ts: int | None = None) -> tuple[SignedRecord, Changes]: ...
    def ingest(self, records: Iterable[SignedRecord], *, source: str,
               cursor: tuple[str, str, int] | None = None) -> Changes: ...
    def freeze(self, origin: str, seq: int, evidence: Evidence | None,
               reason: str) -> None: ...
    def block_signing(self, reason: str) -> None: ...
    def unblock_signing(self, actor: str) -> None: ...
    def unfreeze(self, origin: str, actor: str) -> None: ...
    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None: ...
    def audit_many(self, rows: list[AuditRow]) -> None: ...
    def set_cursor(self, peer: str, origin: str, seq: int) -> None: ...

    # -- reads ---------------------------------------------------------------------------
    def signing_blocked(self) -> str | None: ...
    def head(self, origin: str) -> LogHead | None: ...
    def heads(self) -> list[LogHead]: ...
    def head_stubs(self) -> list[bytes]: ...
    def frozen(self) -> dict[str, int]: ...
    def keyring(self, origin: str) -> KeyRing: ...
    def record_bytes(self, record_id: str) -> bytes | None: ...
    def record_at(self, origin: str, seq: int) -> bytes | None: ...
    def log_rows(self, origin: str, after: int, limit: int) -> Iterator[Any]:
        """Rows with ``seq, type, scope, grp, jurisdictions, lists, labels, stub, raw``,
        readable by column name."""
        ...
    def all_records(self) -> Iterator[bytes]: ...
    def key_records(self, origin: str) -> list[bytes]: ...
    def active_entries(self, hash_type: str, through: int | None = None,
                       chunk: int = 100_000) -> Iterator[tuple[list[int], list[str]]]: ...
    def last_entry_id(self) -> int: ...
    def entries_after(self, entry_id: int, limit: int
                      ) -> tuple[int, dict[str, tuple[list[int], list[str]]]]: ...
    def active_hash_types(self) -> list[str]: ...
    def expired_entries(self, after: int, until: int) -> list[int]: ...
    def entries(self, entry_ids: Iterable[int]) -> dict[int, EntryRow]: ...
    def item_entries(self, record_id: str, item: int | None = None) -> list[EntryRow]: ...
    def feedback_counts(self, refs: Iterable[str]) -> dict[str, dict[str, int]]: ...
    def counts(self) -> dict[str, int]: ...
    def evidence(self) -> list[dict[str, Any]]: ...
    def cursor(self, peer: str, origin: str) -> int: ...
    def audit_rows(self, limit: int = 100) -> list[dict[str, Any]]: ...
    def append_local_many(self, *, signer: SigningKey, origin: str, bodies: Sequence[Body],
                          dist: Distribution | None = None, actor: str = "local",
                          ts: int | None = None) -> tuple[list[SignedRecord], Changes]: ...
    def checkpoint(self) -> tuple[int, int, int]: ...
    def wal_bytes(self) -> int: ...
    def log_expiries(self, until: int) -> int: ...
    def in_force_ids(self, now: int) -> Iterator[list[int]]: ...
    def changes_after(self, after: int, limit: int, lists: tuple[str, ...] | None
                      ) -> list[tuple[Any, ...]]: ...
    def last_change(self) -> int: ...
    def change_records(self, nums: Iterable[int]) -> dict[int, tuple[str, bytes]]: ...
    def change_seq_at(self, ts: int) -> int: ...
    def item_versions(self, nums: Iterable[int]
                      ) -> dict[tuple[int, int], tuple[int, int | None, int | None]]: ...
    def feedback_verdicts(self, refs: Iterable[str]) -> dict[str, dict[str, str]]: ...
    def feedback_on_origin(self, origin: str) -> dict[str, dict[str, str]]: ...
    def alert_state(self) -> tuple[bool, int, int]: ...
    def cursors(self) -> list[tuple[str, str, int]]: ...
    def stub_positions(self, origin: str, after: int, limit: int) -> list[tuple[int, str]]: ...
    def record_rows(self, record_ids: Iterable[str]) -> list[Any]: ...

    # -- receipts (INTERFACES.md part A; node/store/receipts.py) ------------------------
    def receipts_for(self, record_ids: Sequence[str]) -> list[ReceiptRow]: ...
    def receipts_between(self, start_ms: int, end_ms: int) -> list[ReceiptRow]:
        """By ``applied_ms``, ``[start_ms, end_ms)``."""
        ...
    def receipt_nodes(self) -> dict[str, int]:
        """Node origin -> newest local time (ms) anything (a receipt or a record) was
        received from it."""
        ...
    def receipt_delays(self, since_ms: int, limit: int) -> list[tuple[str, str, int]]: ...
    def receipts_waiting(self) -> int: ...
    def owed_receipts(self, limit: int, ours: str) -> Owed: ...
    def sign_receipts(self, *, signer: SigningKey, origin: str,
                      bodies: Sequence[tuple[Distribution, ReceiptBody]],
                      through: int) -> list[SignedRecord] | None: ...

    def close(self) -> None: ...


def open_store(config: NodeConfig, *, follower: bool = False) -> Store:
    """The node's store as ``[store] url`` says: PostgreSQL for a ``postgresql://`` URL, else
    the SQLite file in ``node.data_dir``.

    ``follower``: opened by a process that serves matches for a node running elsewhere (a
    match worker): the database must exist already, and nothing but audit rows is written.
    """
    if config.store_url is not None:
        from hashmesh.node.store.postgres import PostgresStore  # psycopg only when used
        return PostgresStore(config.store_url, follower=follower)
    return Store(config.db_path, follower=follower)


def hold_data_dir(config: NodeConfig, doing: str) -> contextlib.AbstractContextManager[object]:
    """Hold the data directory for this process, where the store is a file that only one
    process may serve (SQLite): a second ``run``, or an offline write beside a running node,
    is refused naming the pid (``lock.py``). A PostgreSQL node may run in several processes
    at once: the signer lease (``cluster.py``) keeps their writes apart, and each process
    follows what the others commit, so nothing is held."""
    if config.store_url is not None:
        return contextlib.nullcontext()
    return DataDirLock(config.data_dir).acquire(doing)


def open_cluster(config: NodeConfig, store: Store) -> Cluster | None:
    """This process's part in a node served by several processes (``node/store/cluster.py``),
    or None for a store only one process may open (the SQLite file): that process always
    signs and has nothing to follow. ``store`` is the one ``open_store`` gave."""
    if config.store_url is None:
        return None
    from hashmesh.node.store.cluster import Cluster
    from hashmesh.node.store.postgres import PostgresStore
    assert isinstance(store, PostgresStore)
    return Cluster(store, holder=api_url(config))


def api_url(config: NodeConfig) -> str:
    """How other processes of the node name this one in errors: its local API's URL."""
    host = config.listen.host
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"{'https' if config.tls else 'http'}://{host}:{config.listen.port}"


def open_async_store(config: NodeConfig, *, follower: bool = False) -> AsyncStore:
    """``open_store`` behind the writer thread and reader pool the running node uses."""
    return AsyncStore(open_store(config, follower=follower))


def store_identity(config: NodeConfig) -> tuple[int, int] | None:
    """Which database file the node has open, for match workers to check they read the same
    one; None for a server database, which cannot be swapped under a running node."""
    if config.store_url is not None:
        return None
    return database_identity(config.db_path)


def describe(config: NodeConfig) -> str:
    """Where the store is, for messages (never the password of a URL)."""
    if config.store_url is None:
        return str(config.db_path)
    return redact_url(config.store_url)


if TYPE_CHECKING:  # mypy checks that the backends provide every method of the interface
    from hashmesh.node.store.postgres import PostgresStore

    def _sqlite_is_a_node_store(store: Store) -> NodeStore:
        return store

    def _postgres_is_a_node_store(store: PostgresStore) -> NodeStore:
        return store
