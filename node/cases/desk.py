"""The case verbs: open, review, reach with a reference and PIN, withdraw, tell the status.

``CaseDesk`` sees the service only through what it is handed: the store, a way to commit a
signing write (the service applies its changes to the index and tells the peers), and how to
name origins. The reference and PIN exist in clear only in memory, in the answer to the
request that opened the case, and in the requests a person makes with them: never in the
database, the audit log or the node's log.

Reaching a case takes the same steps whether or not the reference exists: the attempt is
counted against the HMAC of the reference typed and against the client's address first, then
the PIN is checked against the case's argon2id hash or, for an unknown reference, a decoy
(at most ``VERIFY_AT_ONCE`` at a time: each takes 64 MiB); a right PIN takes the count back.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hashmesh.node.cases.credentials import (
    NodeSecret,
    PinHasher,
    new_pin,
    new_reference,
    normalise_pin,
    normalise_reference,
)
from hashmesh.node.cases.errors import (
    CaseAccessError,
    CaseError,
    CaseLimitError,
    CaseLockedError,
    CaseNotFoundError,
    CaseStateError,
)
from hashmesh.node.cases.status import CaseStatus, build_status
from hashmesh.node.config.node import NodeConfig
from hashmesh.node.store import cases as case_rows
from hashmesh.node.store.cases import AttemptLimit, CaseRow
from hashmesh.node.store.interface import AsyncStore, Changes, NodeStore
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import AddBody, Body, Distribution, Item, SignedRecord

VERIFY_AT_ONCE = 2
CASE_ID_BYTES = 12

SignedWrite = Callable[[NodeStore], tuple[list[SignedRecord], Changes | None]]


@dataclass(frozen=True)
class OpenedCase:
    """What the person who opened a case is shown, once."""

    reference: str
    pin: str
    state: str
    records: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "pin": self.pin, "state": self.state,
                "records": self.records}


@dataclass(frozen=True)
class CaseSummary:
    """A case as its operators see it (the review queue): never its reference or PIN."""

    case_id: str
    state: str
    opened_ms: int
    opened_by: str
    items: int
    records: list[str] = field(default_factory=list)
    hash_types: dict[str, int] = field(default_factory=dict)  # of the hashes held for review

    @classmethod
    def of(cls, row: CaseRow) -> CaseSummary:
        types: dict[str, int] = {}
        if row.staged is not None:
            for item in json.loads(row.staged)["items"]:
                for entry in item["hashes"]:
                    types[entry["type"]] = types.get(entry["type"], 0) + 1
        return cls(row.case_id, row.state, row.opened_ms, row.opened_by, row.items,
                   list(row.records), types)

    def as_json(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "state": self.state, "opened_ms": self.opened_ms,
                "opened_by": self.opened_by, "items": self.items, "records": self.records,
                "hash_types": self.hash_types}


class CaseDesk:
    def __init__(self, config: NodeConfig, store: AsyncStore, *,
                 commit_signed: Callable[[SignedWrite], Awaitable[list[SignedRecord]]],
                 signer: Callable[[], tuple[SigningKey, str]],
                 add_bodies: Callable[[Sequence[Item]], list[Body]],
                 known_origins: Callable[[], Iterable[str]],
                 origin_name: Callable[[str], str | None],
                 hasher: PinHasher | None = None) -> None:
        self.config = config
        self.store = store
        self._commit_signed = commit_signed
        self._signer = signer
        self._add_bodies = add_bodies
        self._known_origins = known_origins
        self._origin_name = origin_name
        self.hasher = hasher or PinHasher()
        self._secret: NodeSecret | None = None
        self._verifying = asyncio.Semaphore(VERIFY_AT_ONCE)

    @property
    def secret(self) -> NodeSecret:
        if self._secret is None:
            self._secret = NodeSecret.load_or_create(self.config.data_dir)
        return self._secret

    # -- operators ----------------------------------------------------------------------

    async def open(self, items: Sequence[Item], dist: Distribution, actor: str, *,
                   review: bool = False) -> OpenedCase:
        limit = self.config.cases.max_items
        if not items:
            raise CaseError("a case needs at least one item", "items")
        if len(items) > limit:
            raise CaseLimitError(f"a case holds at most {limit} items, got {len(items)}",
                                 "items")
        reference, pin = new_reference(), new_pin()
        pin_hash = await asyncio.to_thread(self.hasher.hash, pin)
        row = CaseRow(
            case_id=_new_case_id(), ref_mac=self.secret.mac("reference", reference),
            pin_hash=pin_hash, state="pending_review" if review else "open",
            opened_ms=_now_ms(), opened_by=actor, items=len(items),
            staged=json.dumps({"items": [item.to_json() for item in items],
                               "dist": dist.to_json()}) if review else None)
        bodies = [] if review else self._add_bodies(items)
        signer, origin = self._signer()
        records = await self._commit_signed(lambda s: s.case_open(
            row, signer=signer, origin=origin, bodies=bodies, dist=dist, actor=actor))
        return OpenedCase(reference, pin, row.state, [r.id for r in records])

    async def pending(self) -> list[CaseSummary]:
        rows = await self.store.read(lambda s: s.cases_in_state("pending_review"))
        return [CaseSummary.of(row) for row in rows]

    async def approve(self, case_id: str, actor: str) -> CaseSummary:
        row = await self._case(case_id)
        if row.staged is None:
            raise CaseStateError(f"case {case_id} is {row.state}, not pending_review",
                                 "case_id")
        staged = json.loads(row.staged)
        items = [Item.from_json(raw, f"items[{i}]") for i, raw in enumerate(staged["items"])]
        dist = Distribution.from_json(staged["dist"], "dist")
        bodies = self._add_bodies(items)
        signer, origin = self._signer()
        with _state_errors(case_id):
            await self._commit_signed(lambda s: s.case_approve(
                case_id, signer=signer, origin=origin, bodies=bodies, dist=dist, actor=actor))
        return CaseSummary.of(await self._case(case_id))

    async def reject(self, case_id: str, actor: str) -> None:
        with _state_errors(case_id):
            await self.store.write(lambda s: s.case_reject(case_id, actor))

    # -- the person, with the reference and PIN -------------------------------------------

    async def status(self, reference: str, pin: str, client: str,
                     now_ms: int | None = None) -> CaseStatus:
        row = await self.reach(reference, pin, client)
        return await self.status_of(row, now_ms)

    async def withdraw(self, reference: str, pin: str, client: str) -> CaseStatus:
        row = await self.reach(reference, pin, client)
        if row.state != "withdrawn":
            signer, origin = self._signer()
            with _state_errors(row.case_id):
                await self._commit_signed(lambda s: s.case_withdraw(
                    row.case_id, _now_ms(), signer=signer, origin=origin,
                    actor=_client_actor(client)))
        return await self.status_of(await self._case(row.case_id))

    async def reach(self, reference: str, pin: str, client: str) -> CaseRow:
        """The case this reference and PIN open; ``CaseAccessError`` for a wrong reference
        or PIN alike, ``CaseLockedError`` while the reference or the client is locked."""
        cases = self.config.cases
        typed = normalise_reference(reference)
        ref_mac = self.secret.mac("reference", typed if typed is not None else reference)
        ref_key, client_key = f"reference:{ref_mac}", f"client:{self.secret.mac('client', client)}"
        limits = {
            ref_key: AttemptLimit(cases.pin_attempts, cases.lockout_seconds * 1000,
                                  cases.max_lockout_seconds * 1000,
                                  cases.max_lockout_seconds * 1000),
            client_key: AttemptLimit(cases.client_attempts, cases.client_window_seconds * 1000,
                                     cases.client_window_seconds * 1000,
                                     cases.client_window_seconds * 1000),
        }
        attempt = await self.store.write(lambda s: s.case_attempt_begin(limits, _now_ms()))
        if attempt.locked_ms > 0:
            raise CaseLockedError(attempt.locked_ms / 1000)
        row = (await self.store.read(lambda s: s.case_by_ref_mac(ref_mac))
               if typed is not None else None)
        digits = normalise_pin(pin)
        async with self._verifying:
            right = await asyncio.to_thread(self.hasher.verify,
                                            None if row is None else row.pin_hash,
                                            digits if digits is not None else "")
        if right and row is not None and digits is not None:
            await self.store.write(lambda s: s.case_attempt_succeeded(ref_key, client_key))
            return row
        locked = {("reference" if key == ref_key else "client"): ms // 1000
                  for key, ms in attempt.locks}
        await self.store.write(lambda s: s.case_attempt_failed(
            _client_actor(client), None if row is None else row.case_id, locked))
        raise CaseAccessError()

    async def status_of(self, row: CaseRow, now_ms: int | None = None) -> CaseStatus:
        """The status of a case this node holds (no PIN: for callers that checked it)."""
        records = list(row.records)
        targets = records + ([row.withdraw_record] if row.withdraw_record else [])
        receipts = await self.store.read(lambda s: s.receipts_for(targets)) if targets else []
        last_seen = await self.store.read(lambda s: s.receipt_nodes())
        own = self._signer()[1]
        known = {o: self._origin_name(o) for o in {*self._known_origins(), *last_seen}
                 if o != own}
        verdicts = await self.store.read(lambda s: s.feedback_verdicts(_refs(s, records)))
        senders = {origin for by in verdicts.values() for origin in by}
        return build_status(row, known=known, last_seen=last_seen, receipts=receipts,
                            verdicts=verdicts, names={o: self._origin_name(o) for o in senders},
                            now_ms=now_ms)

    async def _case(self, case_id: str) -> CaseRow:
        row = await self.store.read(lambda s: s.case(case_id))
        if row is None:
            raise CaseNotFoundError(f"no case {case_id}", "case_id")
        return row


@contextmanager
def _state_errors(case_id: str) -> Iterator[None]:
    """The store's case errors as the case errors of the API and CLI."""
    try:
        yield
    except case_rows.NoSuchCaseError:
        raise CaseNotFoundError(f"no case {case_id}", "case_id") from None
    except case_rows.CaseStateError as exc:
        raise CaseStateError(str(exc), "case_id") from None


def _refs(store: NodeStore, records: Sequence[str]) -> list[str]:
    """Every feedback target of the case: its records, and each item of them."""
    refs = list(records)
    for record in records:
        raw = store.record_bytes(record)
        if raw is not None:
            body = SignedRecord.from_bytes(raw).body
            if isinstance(body, AddBody):
                refs += [f"{record}/{i}" for i in range(len(body.items))]
    return refs


def _client_actor(client: str) -> str:
    return f"client:{client}"


def _new_case_id() -> str:
    return secrets.token_hex(CASE_ID_BYTES)


def _now_ms() -> int:
    return int(time.time() * 1000)
