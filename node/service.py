"""What one node does, independent of HTTP: add, revoke, feedback, match, status, cases.

``NodeService`` joins the config, the identity keys, the store and the in-memory matcher.
Every write goes store-first: the record is signed and committed, then the matcher is
updated with the committed changes, so the index never shows what the store could lose.
The HTTP layer (``node/api/routes.py``) and federation call into this class.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from hashmesh.node.cases import CaseDesk, CaseStatus, CaseSummary, OpenedCase
from hashmesh.node.config.identity import Identity
from hashmesh.node.config.node import NodeConfig
from hashmesh.node.config.peers import PeersConfig
from hashmesh.node.federation.receipts import FIGURES_MAX_ROWS, FIGURES_WINDOW_MS, figures
from hashmesh.node.federation.reload import PeersWatcher
from hashmesh.node.federation.sync import Federation
from hashmesh.node.matching.answers import ALL_TYPES, SETTLE_SECONDS, HashQuery, Matching
from hashmesh.node.matching.follow import FeedFollower
from hashmesh.node.matching.index_check import IndexCheck, compare_index
from hashmesh.node.matching.matcher import Matcher
from hashmesh.node.matching.origins import origin_profile
from hashmesh.node.matching.verdicts import Policy, dispute_state, standing_verdicts
from hashmesh.node.runtime.metrics import NodeMetrics
from hashmesh.node.runtime.tasks import Supervisor, cancel_and_wait, every
from hashmesh.node.store.audit_chain import head_message, head_statement
from hashmesh.node.store.interface import (
    AsyncStore,
    Changes,
    NodeStore,
    open_async_store,
    open_cluster,
)
from hashmesh.protocol.distribution import distribution_for_feedback
from hashmesh.protocol.encoding import item_size, item_text
from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.hashtypes import get_hash_type
from hashmesh.protocol.item_runs import ItemRun
from hashmesh.protocol.keys import b64url_encode
from hashmesh.protocol.records import (
    MAX_RECORD_BYTES,
    AddBody,
    Distribution,
    FeedbackBody,
    Item,
    KeyBody,
    ProfileBody,
    RevokeBody,
    SignedRecord,
    Target,
)

if TYPE_CHECKING:
    from hashmesh.node.store.cluster import Cluster

log = logging.getLogger("hashmesh.node")

VERSION = "0.1.0"
EXPIRY_SWEEP_SECONDS = 60
LEASE_POLL_SECONDS = 0.5  # a follower bids for the lease, a leader checks it, this often


class NotFoundError(Exception):
    code = "NOT_FOUND"

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class ForbiddenError(Exception):
    code = "FORBIDDEN"

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class NodeService:
    """One organisation's node: its store, index and keys."""

    def __init__(self, config: NodeConfig, identity: Identity, store: AsyncStore,
                 peers: PeersConfig) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self.peers = peers
        self.metrics = NodeMetrics()
        self.matching = Matching(config, store, self.metrics, self.origin_name)
        self.started = time.time()
        self.tasks = Supervisor(self.metrics.background_task_failures)
        self.sweep_seconds: float = EXPIRY_SWEEP_SECONDS
        self.retention_seconds: float = config.retention.sweep_minutes * 60.0
        self._warming: asyncio.Task[None] | None = None
        self.federation: Federation | None = None
        # what the server's match workers report, when it runs them
        self.worker_status: Callable[[], dict[str, Any]] | None = None
        # the peers.toml watcher, once federation runs (its last refusal is in status)
        self.peers_watcher: PeersWatcher | None = None
        self._index_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-writer")
        # committed changes not yet taken by the index writer, in commit order, and the job
        # that will take them (see apply_changes_soon)
        self._pending = Changes()
        self._applying: asyncio.Future[None] | None = None
        self._pending_lock = threading.Lock()
        # Several processes, one node (node/store/cluster.py): None for a single process,
        # which always leads. A follower signs nothing, runs no federation, and follows the
        # database's changes into its index until it takes the signer lease.
        self.cluster: Cluster | None = None
        self.follower: FeedFollower | None = None
        self.leads = True
        self._following = asyncio.Lock()  # one poll of the feed at a time
        self.on_lead: Callable[[], Awaitable[None]] | None = None  # (re)start federation
        self.on_demote: Callable[[], None] | None = None  # stop pulling from peers
        self.cases = CaseDesk(
            config, store, commit_signed=self._commit_signed,
            signer=lambda: (self.identity.signer, self.origin),
            add_bodies=lambda items: [AddBody(batch) for batch in batch_items(
                items, self.config.limits.max_items_per_record)],
            known_origins=self.peer_origins, origin_name=self.origin_name)

    @classmethod
    async def open(cls, config: NodeConfig, identity: Identity | None = None) -> NodeService:
        """Open the store, make sure the signing key is authorised, and load the index."""
        identity = identity or Identity.load(config)
        store = open_async_store(config)
        service = cls(config, identity, store, config.load_peers())
        service._warming = asyncio.create_task(_warm_up_kernel())
        try:
            service.cluster = cluster = open_cluster(config, store.store)
            through = None
            if cluster is not None:
                service.leads = await asyncio.to_thread(cluster.try_lead)
                service.follower = FeedFollower(store, cluster)
                through = await service.follower.start()
                service.matching.catch_up = service._catch_up_with_feed
            if service.leads:
                await service._authorise_signer()
            await service.matching.reload_index(through=None if service.leads else through)
            await service.refresh_alert_gauges()
        except BaseException:
            await service.close()
            raise
        return service

    async def start_background(self) -> None:
        self.tasks.start("expiry-sweeper", lambda: every(self.sweep_seconds,
                                                         self.sweep_expired))
        self.tasks.start("index-settle", lambda: every(SETTLE_SECONDS,
                                                       self.matching.settle_index))
        self.tasks.start("wal-checkpoint", lambda: every(
            self.config.limits.wal_checkpoint_seconds, self.checkpoint))
        if self.config.retention.enabled:
            self.tasks.start("retention-sweeper", lambda: every(
                self.retention_seconds, self.prune_retained))

        if self.cluster is not None:
            self.tasks.start("lead-or-follow", self._lead_or_follow_forever)

    async def _lead_or_follow_forever(self) -> None:
        """A leader checks its lease; a follower follows the feed and bids for the lease."""
        cluster, follower = self.cluster, self.follower
        assert cluster is not None and follower is not None
        while True:
            try:
                if self.leads:
                    await asyncio.sleep(LEASE_POLL_SECONDS)
                    positions = await follower.positions_now()  # read, then prove the lease
                    if await asyncio.to_thread(cluster.still_leads):
                        async with self._following:
                            follower.removal_id, follower.entry_id = positions
                        continue
                    log.error("ALERT: lost the signer lease (database connection lost); "
                              "following until this or another process takes it")
                    cluster.demote()
                    self.leads = False
                    if self.on_demote is not None:
                        self.on_demote()
                    continue
                await self._poll_feed()
                if await asyncio.to_thread(cluster.try_lead):
                    await self._poll_feed()  # the old leader's last
                    self.leads = True
                    await self._authorise_signer()
                    if self.on_lead is not None:
                        await self.on_lead()
                else:
                    await asyncio.to_thread(cluster.wait, LEASE_POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down: answer from the index, retry
                log.warning("following the database failed (%s); retrying", exc)
                await asyncio.sleep(LEASE_POLL_SECONDS)

    async def close(self) -> None:
        """Stop the background loops and close the store, whatever failed before: the
        queued audit rows are written by ``store.close()``."""
        try:
            if self._warming is not None:
                await cancel_and_wait(self._warming)
            await self.tasks.stop_all()
            if self.cluster is not None:
                self.cluster.close()
            self._index_writer.shutdown(wait=True)
            self.matching.close()
        finally:
            self.store.close()

    @property
    def matcher(self) -> Matcher:
        return self.matching.matcher

    @property
    def origin(self) -> str:
        return self.identity.origin

    # -- writes ---------------------------------------------------------------------------

    async def add(self, items: Sequence[Item], dist: Distribution, actor: str
                  ) -> list[SignedRecord]:
        """Sign the items in as few ``add`` records as the protocol limits allow, all in one
        transaction: a request is stored whole or not at all, so a retry never duplicates."""
        return await self._sign_many(
            [AddBody(batch) for batch in batch_items(items,
                                                     self.config.limits.max_items_per_record)],
            dist, actor)

    async def revoke(self, targets: Sequence[Target], reason: str, actor: str) -> SignedRecord:
        """Revoke our own records or items. Revocations travel everywhere (scope ``all``)."""
        for index, target in enumerate(targets):
            await self._check_own_add(target, f"targets[{index}]")
        return await self._sign(RevokeBody(tuple(targets), reason), Distribution(), actor)

    async def feedback(self, target: Target, verdict: str, note: str | None,
                       actor: str) -> SignedRecord:
        raw = await self.store.read(lambda s: s.record_bytes(target.record))
        if raw is None:
            raise NotFoundError(f"no record {target.record}", "target")
        # Feedback goes only where its target's body may go (SPEC §9.2).
        dist = distribution_for_feedback(SignedRecord.from_bytes(raw))
        return await self._sign(FeedbackBody(target, verdict, note), dist, actor)

    async def set_profile(self, body: ProfileBody, actor: str) -> SignedRecord:
        """Sign this origin's profile (scope ``all``: it travels whole, SPEC §4.6)."""
        return await self._sign(body, Distribution(), actor)

    def origin_profile(self, origin: str, profiles: dict[str, ProfileBody]
                       ) -> dict[str, Any] | None:
        """How ``origin`` is named here: pinned (our own name, or peers.toml), else by its
        own profile, marked self-declared (``matching/origins.py``)."""
        return origin_profile(self.origin_name(origin), profiles.get(origin))

    async def _sign(self, body: AddBody | RevokeBody | FeedbackBody | KeyBody | ProfileBody,
                    dist: Distribution, actor: str) -> SignedRecord:
        [record] = await self._sign_many([body], dist, actor)
        return record

    async def _sign_many(self, bodies: Sequence[AddBody | RevokeBody | FeedbackBody | KeyBody
                                                | ProfileBody],
                         dist: Distribution, actor: str) -> list[SignedRecord]:
        signer = self.identity.root if bodies[0].TYPE == "key" else self.identity.signer
        if signer is None:
            raise ForbiddenError("a key record needs the root key, which is offline; bring it "
                                 "back and use `hashmesh key rotate` (node stopped)", "keys.root")

        return await self._commit_signed(lambda store: store.append_local_many(
            signer=signer, origin=self.origin, bodies=bodies, dist=dist, actor=actor), actor)

    async def _commit_signed(self, write: Callable[[NodeStore], tuple[list[SignedRecord],
                                                                      Changes | None]],
                             actor: str | None = None) -> list[SignedRecord]:
        """Run a store write that signs records (``append_local_many``, the case verbs),
        then bring the index in line and tell the peers. The case verbs log no actor: a
        client's address beside a record id would tie a person to a case in the log."""
        def commit(store: NodeStore) -> list[SignedRecord]:
            records, changes = write(store)
            if changes is not None:
                self.queue_changes(changes)
            return records

        records = await self.store.write(commit)
        await self.apply_changes_soon()
        for record in records:
            self.metrics.records_signed.labels(record.head.type).inc()
            log.info("signed %s seq=%d id=%s%s", record.head.type, record.head.seq, record.id,
                     f" by {actor}" if actor else "")
        if records and self.federation is not None:
            self.federation.notify_all()
        return records

    # -- cases (node/cases/) ----------------------------------------------------------------

    async def open_case(self, items: Sequence[Item], dist: Distribution, actor: str, *,
                        review: bool = False) -> OpenedCase:
        """Open a case for one person: its reference and PIN are in the answer only. With
        ``review``, nothing is signed or shared until ``approve_case``."""
        return await self.cases.open(items, dist, actor, review=review)

    async def approve_case(self, case_id: str, actor: str) -> CaseSummary:
        return await self.cases.approve(case_id, actor)

    async def reject_case(self, case_id: str, actor: str) -> None:
        await self.cases.reject(case_id, actor)

    async def pending_cases(self) -> list[CaseSummary]:
        return await self.cases.pending()

    async def case_status(self, reference: str, pin: str, client: str) -> CaseStatus:
        return await self.cases.status(reference, pin, client)

    async def withdraw_case(self, reference: str, pin: str, client: str) -> CaseStatus:
        return await self.cases.withdraw(reference, pin, client)

    def peer_origins(self) -> list[str]:
        """The origins of the configured peers (the peers.toml in force)."""
        return [peer.origin.id for peer in self.peers if peer.origin is not None]

    async def _check_own_add(self, target: Target, path: str) -> None:
        entries = await self.store.read(lambda s: s.item_entries(target.record, target.item))
        if not entries:
            raw = await self.store.read(lambda s: s.record_bytes(target.record))
            what = "record" if raw is None else "item"
            raise NotFoundError(f"no {what} {target.ref} with hashes in this node", path)
        if entries[0].origin != self.origin:
            raise ForbiddenError(f"{target.ref} belongs to origin {entries[0].origin}; only "
                                 "its origin can revoke it", path)

    async def _authorise_signer(self) -> None:
        """A separate signing key is authorised by a ``key`` record before it signs.

        ``hashmesh init`` writes that record, so a node whose root key is offline starts; one
        whose signing key was never authorised needs the root key once."""
        signer = self.identity.signer.id
        if signer == self.origin:
            return
        ring = await self.store.read(lambda s: s.keyring(self.origin))
        if signer not in ring.active_keys():
            await self._sign(KeyBody(signer), Distribution(), "node")

    async def _poll_feed(self) -> None:
        """Index what the feed holds past this follower's position."""
        assert self.follower is not None
        async with self._following:
            await self._poll_and_apply(self.follower)

    async def _poll_and_apply(self, follower: FeedFollower, until: int | None = None) -> None:
        changes = await follower.poll(until)
        if changes.added or changes.removed:
            await self.apply_changes_soon(changes)

    async def _catch_up_with_feed(self) -> None:
        """Before a batch of lookups (``Matching.catch_up``), a follower that is behind the
        feed polls it first: a query sent after another process acknowledged an add then
        matches it here too, instead of after the next NOTIFY or poll. One indexed read per
        batch when nothing is new."""
        follower = self.follower
        if self.leads or follower is None:
            return
        last = await self.store.read(lambda s: s.last_entry_id())
        # under the lock: a poll in flight has moved the position before its changes are in
        # the index, so the check waits for it; and the process may have taken the lease
        # meanwhile (a leader's index holds its own writes)
        async with self._following:
            if not self.leads and last > follower.entry_id:
                await self._poll_and_apply(follower, until=last)

    def queue_changes(self, changes: Changes) -> Changes:
        """Queue a commit's changes for the index, in commit order; thread-safe.

        Called on the store's writer thread right after each commit, so the queue holds
        changes in the order they were committed whoever committed them (local writes, any
        number of pulls): a revoke can never reach the index before the add it targets.
        ``apply_changes_soon`` hands the queue to the index.
        """
        with self._pending_lock:
            self._pending.extend(changes)
        return changes

    def apply_changes_soon(self, changes: Changes | None = None) -> asyncio.Future[None]:
        """Apply every queued change (and ``changes``) on the index-writer thread.

        A sync page changes up to ~100k hashes; at 1M indexed that is ~0.1 s of numpy (the
        delta merge), which here runs beside the next page's work instead of blocking the
        event loop. Callers that answer a client await the future (read your writes).

        Changes queued while the thread is busy are applied together (all additions, then
        all removals: the same end state, as an entry id is never added again once removed,
        and every removal in the queue was committed after the additions before it).
        """
        with self._pending_lock:
            if changes is not None:
                self._pending.extend(changes)
            if self._applying is None:
                loop = asyncio.get_running_loop()
                self._applying = loop.run_in_executor(self._index_writer,
                                                      self._apply_pending)
            return self._applying

    def _apply_pending(self) -> None:
        with self._pending_lock:
            batch, self._pending, self._applying = self._pending, Changes(), None
        self.apply_changes(batch)

    async def index_settled(self) -> None:
        """Wait until every change committed so far is in the index."""
        await self.apply_changes_soon()

    async def check_index(self) -> IndexCheck:
        """``compare_index`` once nothing committed is on its way to the index; a difference
        is looked at twice, so that a commit that landed between the two reads is not
        reported."""
        await self.index_settled()
        result = await compare_index(self.matching)
        if not result.ok:
            await self.index_settled()
            result = await compare_index(self.matching)
        return result

    def apply_changes(self, changes: Changes) -> None:
        """Bring the matcher in line with a committed write."""
        for hash_type, (entry_ids, values) in changes.added.items():
            self.matcher.add_many(hash_type, entry_ids, values)
        for entry_id in changes.removed:
            self.matcher.remove(entry_id)
        self.matching.update_gauges()

    # -- federation events ----------------------------------------------------------------

    async def own_log_behind(self, peer: str, peer_seq: int) -> None:
        """A peer holds more of our own log than we do: we were restored from a backup.

        Signing now would reuse seq numbers and equivocate, so it is blocked until an
        operator has let the node pull its own records back and runs ``hashmesh unfreeze``.
        """
        head = await self.store.read(lambda s: s.head(self.origin))
        ours = head.seq if head else 0
        reason = (f"peer {peer} holds seq {peer_seq} of this node's own log but the database "
                  f"has only seq {ours} (restored from an old backup?)")
        if await self.store.read(lambda s: s.signing_blocked()) is None:
            log.error("ALERT: refusing to sign: %s", reason)
            await self.store.write(lambda s: s.block_signing(reason))
        await self.refresh_alert_gauges()

    async def record_equivocation(self, evidence: Evidence, peer: str) -> None:
        """Store the evidence, freeze the origin before the conflict, alert the operator."""
        origin, seq = evidence.origin, evidence.seq
        reason = f"equivocation at seq {seq} (records {evidence.first.id} and " \
                 f"{evidence.second.id}), seen via peer {peer}"
        log.error("ALERT: origin %s %s; frozen at seq %d, no branch picked", origin, reason,
                  seq - 1)
        await self.store.write(lambda s: s.freeze(origin, seq - 1, evidence, reason))
        if origin == self.origin:
            await self.store.write(lambda s: s.block_signing(reason))
        await self.refresh_alert_gauges()

    async def refresh_alert_gauges(self) -> None:
        """Set the alert gauges from the store: at start (a restart must not hide an alert),
        after an event, and on every ``/metrics`` scrape (``hashmesh unfreeze`` writes the
        database of a running node directly; the next scrape shows it cleared)."""
        blocked, evidence, frozen = await self.store.read(lambda s: s.alert_state())
        self.metrics.signing_blocked.set(1 if blocked else 0)
        self.metrics.equivocations.set(evidence)
        self.metrics.frozen_origins.set(frozen)

    # -- reads ----------------------------------------------------------------------------

    def threshold(self, hash_type: str, override: int | None, path: str) -> int:
        kind = get_hash_type(hash_type, path)
        if override is None:
            return self.config.match.threshold_for(kind.name)
        if not 0 <= override <= kind.max_threshold:
            raise SchemaError(f"{kind.name} threshold must be between 0 and "
                              f"{kind.max_threshold}, got {override}", path)
        return override

    def origin_name(self, origin: str) -> str | None:
        return self.config.name if origin == self.origin else self.peers.origin_name(origin)

    async def record(self, record_id: str) -> dict[str, Any]:
        raw = await self.store.read(lambda s: s.record_bytes(record_id))
        if raw is None:
            raise NotFoundError(f"no record {record_id}", "id")
        record = SignedRecord.from_bytes(raw)
        entries = await self.store.read(lambda s: s.item_entries(record_id))
        origin = record.head.origin
        profiles = await self.store.read(lambda s: s.profiles([origin]))
        shown = self.origin_profile(origin, profiles)
        receipts = await self.store.read(lambda s: s.receipts_for([record_id]))
        return {
            "id": record.id,
            "origin_name": None if shown is None else shown["name"],
            "origin_profile": shown,
            "record": record.to_json(),
            "hashes": [{"item": f"{e.record}/{e.item}", "type": e.hash_type, "value": e.value,
                        "active": e.active} for e in entries
                       if e.value],  # erased by retention (node/store/retention.py): gone
            "receipts": [{"node": r.node, "name": self.origin_name(r.node), "kind": r.kind,
                          "applied_ms": r.applied_ms, "after_ms": r.applied_ms - r.target_ts,
                          "receipt": r.receipt} for r in receipts],
        }

    async def status(self) -> dict[str, Any]:
        counts = await self.store.read(lambda s: s.counts())
        frozen = await self.store.read(lambda s: s.frozen())
        head = await self.store.read(lambda s: s.head(self.origin))
        return {
            "name": self.config.name,
            "origin": self.origin,
            "signing_key": self.identity.signer.id,
            "node_key": self.identity.node.id,
            "version": VERSION,
            "profile": (lambda p: None if p is None else p.to_json())(
                (await self.store.read(lambda s: s.profiles([self.origin]))).get(self.origin)),
            "head": None if head is None else head.to_json(),
            "counts": counts,
            "index": {t: self.matcher.count(t) for t in ALL_TYPES if self.matcher.count(t)},
            "frozen_origins": frozen,
            "signing_blocked": await self.store.read(lambda s: s.signing_blocked()),
            "peers": len(self.peers.peers),
            "uptime_seconds": int(time.time() - self.started),
            "match_workers": None if self.worker_status is None else self.worker_status(),
            "limits": {"max_batch": self.config.limits.max_batch,
                       "max_add_items": self.config.limits.max_add_items,
                       "max_body_bytes": self.config.limits.max_body_bytes},
            "lists": {"default": self.config.lists.default,
                      "allowed": list(self.config.lists.allowed)},
            "peers_config": self.peers_config_status(),
            "peer_sync": self.peer_sync(),
            "background_tasks": self.tasks.status(),
            "wal_bytes": await self.store.read(lambda s: s.wal_bytes()),
            "disputed": await self.disputed(),
            "audit_head": await self.audit_head(),
            "checkpoints": (None if self.federation is None
                            else await self.federation.checkpoints.alarms()),
            "receipts": await self.receipt_figures(),
            "cluster": None if self.cluster is None else {
                "leads": self.leads, "epoch": self.cluster.epoch,
                "leader": await asyncio.to_thread(self.cluster.leader),
                "followed_entry_id": None if self.follower is None else self.follower.entry_id},
        }

    def peer_sync(self) -> dict[str, dict[str, Any]]:
        """Each linked peer's sync state (``federation/link.py: PeerHealth``): up or down,
        the last pull and how old it is, failures in a row, backoff left, the last error."""
        if self.federation is None:
            return {}
        now = time.time()
        return {name: health.to_json(now)
                for name, health in sorted(self.federation.health().items())}

    async def audit_head(self) -> dict[str, Any] | None:
        """The newest audit row's id and hash, signed by the node key (``audit_chain``): what
        an auditor notes down, so that a later export that lost its tail is caught."""
        newest = await self.store.read(lambda s: s.audit_rows(1))
        if not newest:
            return None
        statement = head_statement(self.identity.node.id, newest[0]["id"], newest[0]["hash"],
                                   time.time_ns() // 1_000_000)
        signature = self.identity.node.sign(head_message(statement))
        return {**statement, "signature": b64url_encode(signature)}

    async def receipt_figures(self) -> dict[str, Any]:
        """Per other node, from the receipts we hold (SPEC §21): time-to-active and
        time-to-removal percentiles over the last 30 days, and when we last heard from it."""
        since = int(time.time() * 1000) - FIGURES_WINDOW_MS
        delays = [d for d in await self.store.read(
            lambda s: s.receipt_delays(since, FIGURES_MAX_ROWS)) if d[0] != self.origin]
        heard = await self.store.read(lambda s: s.receipt_nodes())
        heard.pop(self.origin, None)
        receipts = self.config.receipts
        return {"enabled": receipts.enabled, "interval_seconds": receipts.interval_seconds,
                "window_days": FIGURES_WINDOW_MS // 86_400_000,
                "waiting_for_target": await self.store.read(lambda s: s.receipts_waiting()),
                "nodes": figures(delays, heard, self.peers.origin_name)}

    def peers_config_status(self) -> dict[str, Any]:
        """The peers file in force, and the last edit of it that was refused (if the file on
        disk is still that one): an operator must see that their edit did not apply."""
        refused = None if self.peers_watcher is None else self.peers_watcher.refused
        return {"file": str(self.config.federation.peers_file),
                "refused": refused is not None,
                "refused_at": None if refused is None else int(refused.at),
                "reason": None if refused is None else refused.reason}

    async def disputed(self) -> list[dict[str, Any]]:
        """This origin's items (or whole records) that answer ``disputed`` instead of
        ``match``, and who disputes them: what its operators should look at first."""
        feedback = await self.store.read(lambda s: s.feedback_on_origin(self.origin))
        if not feedback:
            return []
        frozen = await self.store.read(lambda s: s.frozen())
        policy = Policy.from_config(self.config.match)
        found = []
        for target in sorted(feedback):
            record, _, item = target.partition("/")
            standing = (standing_verdicts(feedback, record, int(item)) if item
                        else feedback[target])
            state = dispute_state(standing, self.origin, frozen, policy)
            if state.disputed:
                found.append({"target": target, "not_ncii": list(state.not_ncii)})
        return found


    async def sweep_expired(self, now: int | None = None) -> int:
        """Drop expired hashes from the index, and log their expiry in the change feed."""
        until = int(time.time() * 1000) if now is None else now

        async def remove(expired: list[int]) -> None:
            if expired:
                await self.apply_changes_soon(Changes(removed=expired))

        swept = await self.matching.sweep_expired(until, remove)
        await self.store.write(lambda s: s.log_expiries(until))
        return swept

    async def prune_retained(self, now: int | None = None) -> dict[str, int]:
        """Erase the hashes of items withdrawn or expired more than ``prune_after_days``
        ago (``node/store/retention.py``), a batch a transaction, each batch audited. Only
        the process that signs writes it (the others of a PostgreSQL node follow)."""
        total = {"hashes": 0, "items": 0, "records_stubbed": 0}
        if not self.leads:
            return total
        days = self.config.retention.prune_after_days
        before = (int(time.time() * 1000) if now is None else now) - days * 86_400_000
        while True:
            pruned = await self.store.write(lambda s: s.prune(before))
            for key, value in pruned.to_json().items():
                total[key] += value
            if pruned.done:
                break
        if total["hashes"]:
            log.info("retention: erased %d hashes of %d withdrawn or expired items (%d records "
                     "kept as stubs)", total["hashes"], total["items"], total["records_stubbed"])
        return total

    async def checkpoint(self) -> None:
        """Fold the WAL into the database file (``Store.checkpoint``)."""
        await self.store.write(lambda s: s.checkpoint())
        self.metrics.wal_bytes.set(await self.store.read(lambda s: s.wal_bytes()))

    async def reload_index(self) -> None:
        await self.matching.reload_index()

    async def match(self, queries: Sequence[HashQuery], thresholds: dict[str, int],
                    lists: frozenset[str] | None, actor: str) -> list[dict[str, Any]]:
        return await self.matching.match(queries, thresholds, lists, actor)

    async def match_image(self, data: bytes, thresholds: dict[str, int],
                          lists: frozenset[str] | None, actor: str) -> dict[str, Any]:
        return await self.matching.match_image(data, thresholds, lists, actor)


async def _warm_up_kernel() -> None:
    """Compile the match kernel, or load it from numba's cache (~0.7 s), beside the node's
    start rather than before it: the node syncs and serves at once, and a match that comes
    sooner waits for the kernel on the index thread, not on the event loop."""
    started = time.monotonic()
    try:
        await asyncio.to_thread(Matcher.warm_up)
    except Exception:  # the first match will compile it, or fail with the reason
        log.exception("could not compile the match kernel in advance")
        return
    elapsed = time.monotonic() - started
    if elapsed > 2:
        from hashmesh.node.matching.hamming_kernels import CACHE_ON_DISK  # imports numba: only here

        log.info("compiled the match kernel in %.1f s (%s)", elapsed,
                 "first start after an install; cached for later starts" if CACHE_ON_DISK
                 else "numba has no writable cache directory: set NUMBA_CACHE_DIR to "
                 "skip this at every start")


ENVELOPE_ALLOWANCE = 2_048


def _encoded_size(item: Item) -> int:
    """The item's canonical size plus a separator: counted for the usual shape, from the
    template encoder for other valid items, else from ``json.dumps``, which gives the same
    length (every value is ASCII-checked by the protocol's parsers except labels and notes,
    which json.dumps escapes no shorter than RFC 8785 does)."""
    size = item_size(item)
    if size is not None:
        return size + 1
    text = item_text(item)
    if text is None:
        text = json.dumps(item.to_json(), separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8")) + 1


def batch_items(items: Sequence[Item], max_items: int) -> list[Sequence[Item]]:
    """Group items by list (so a peer's list policy takes or stubs a record whole), then
    split each group by count and by encoded size so that every record fits the limits.

    An ``ItemRun`` (one list, items of one size) is cut into runs of equal length, as the
    item-by-item split would cut it."""
    if isinstance(items, ItemRun):
        budget = MAX_RECORD_BYTES - ENVELOPE_ALLOWANCE
        step = max(1, min(max_items, budget // (items.item_size + 1)))
        return [items[start:start + step] for start in range(0, len(items), step)]
    by_list: dict[str, list[Item]] = {}
    for item in items:
        by_list.setdefault(item.list, []).append(item)
    batches: list[Sequence[Item]] = []
    budget = MAX_RECORD_BYTES - ENVELOPE_ALLOWANCE
    for group in by_list.values():
        current: list[Item] = []
        size = 0
        for item in group:
            item_size = _encoded_size(item)
            if current and (len(current) >= max_items or size + item_size > budget):
                batches.append(tuple(current))
                current, size = [], 0
            current.append(item)
            size += item_size
        batches.append(tuple(current))
    return batches
