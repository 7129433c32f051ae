"""Pulling peers' logs: pull is the truth, push is a hint.

Each configured peer has one ``PeerLink`` (``link.py``): its own queue of work, backoff and
health. This module is what a link's round does, and the signed HTTP calls it makes.

A pull reads the peer's heads (parsed off the event loop, and only those of origins we take
from that peer: a peer listing thousands of other origins costs a byte search per line),
then, for each origin we accept from that peer and hold less of, reads log pages after our
head. Every page is verified record by record (schema, canonical bytes, digest, key validity,
signature, chain) off the event loop, then stored in one transaction together with the peer's
cursor: a cursor never advances past what is committed. A page with a bad record is refused
from that record on: the records before it verified, so they are stored (SPEC §17.4, the
verified prefix) before the round fails. Pages are pipelined (page k commits while page k+1
is verified and page k+2 fetched) and a page's Ed25519 checks run on a small thread pool;
each record is still parsed and verified exactly once, and faults are reported in record
order. Two valid records at one ``(origin, seq)`` become evidence and freeze the origin,
after which we pull nothing more of it (no branch is picked). A round reads at most
``MAX_PAGES_PER_ROUND`` pages per origin, so a peer serving endless valid records cannot
keep a link busy forever.

Refused records are counted in ``hashmesh_records_rejected{code}``; any refusal fails the
round, which marks the peer down and backs off. A redirect or a timeout fails it too, with
what the peer answered (the ``Location``) or which limit it missed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from yarl import URL

from hashmesh.node.config.peers import PeerConfig, PeersConfig
from hashmesh.node.federation.checkpoints import CheckpointBook
from hashmesh.node.federation.errors import (
    PeerProtocolError,
    PeerTimeoutError,
    RecordRefusedError,
)
from hashmesh.node.federation.httpsig import sign_request
from hashmesh.node.federation.interface import LocalNode
from hashmesh.node.federation.link import PeerHealth, PeerLink
from hashmesh.node.federation.pages import parse_heads, verify_page
from hashmesh.node.federation.receipts import ReceiptSender
from hashmesh.node.federation.repair import BodyRepair
from hashmesh.node.runtime.metrics import labelled
from hashmesh.node.runtime.tasks import cancel_and_wait
from hashmesh.node.store.interface import Changes, NodeStore
from hashmesh.protocol.errors import (
    KeyNotAuthorisedError,
    KeyRevokedError,
    ProtocolError,
)
from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.log import LogHead, detect_equivocation
from hashmesh.protocol.records import SignedRecord
from hashmesh.protocol.signing import verify_signature

__all__ = ["Federation", "PeerProtocolError", "RecordRefusedError"]

log = logging.getLogger("hashmesh.sync")

MAX_PAGES_PER_ROUND = 2_000
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5, sock_read=10)
VERIFY_THREADS = 2
INDEX_BATCH = 100_000  # hashes a pull hands the matcher at once (see _IndexBatch)


class _IndexBatch:
    """When a pull hands its committed pages to the matcher.

    Each page's changes are queued for the index on the store's writer thread as it commits
    (``LocalNode.queue_changes``: commit order, whoever commits). Each hand-over
    (``apply_changes_soon``) merges the matcher's delta into its main arrays once, ~0.1 s
    of numpy at 1M hashes whatever the batch size, so a bulk pull hands over every
    ``INDEX_BATCH`` hashes rather than every page (a 1M-hash sync: 10 merges, not 35). A page
    that removes entries (a revoke) is handed over at once, and whatever is left when the
    pull ends, however it ends: a commit that finishes after that (the pull was cancelled
    meanwhile) is handed over as soon as it is done.
    """

    def __init__(self, node: LocalNode) -> None:
        self.node = node
        self.added = 0
        self.ended = False
        self.applying: list[asyncio.Future[None]] = []

    def committed(self, changes: Changes) -> None:
        self.added += changes.added_count
        if self.ended or changes.removed or self.added >= INDEX_BATCH:
            self.flush()

    def flush(self) -> None:
        self.added = 0
        try:
            self.applying.append(self.node.apply_changes_soon())
        except RuntimeError:  # the node is closing: its index is going away too
            log.debug("index hand-over after the node closed", exc_info=True)

    async def wait(self) -> None:
        self.ended = True
        self.flush()
        await asyncio.shield(asyncio.gather(*self.applying))


def _discard(ahead: tuple[int, asyncio.Future[list[bytes]]] | None) -> None:
    """Cancel a read-ahead page that will not be used, and never report its outcome."""
    if ahead is not None:
        ahead[1].cancel()
        ahead[1].add_done_callback(lambda done: done.cancelled() or done.exception())


class Federation:
    """All peer links of one node, and the signed HTTP calls they make."""

    def __init__(self, node: LocalNode) -> None:
        self.node = node
        self.links: dict[str, PeerLink] = {}
        self.announced = False  # we listen: new links hint their peer first (``announce``)
        self.stored_from: Counter[str] = Counter()  # records stored from each peer
        self.session: aiohttp.ClientSession | None = None
        self.verifier = ThreadPoolExecutor(max_workers=VERIFY_THREADS,
                                           thread_name_prefix="verify")
        self._stopping: set[asyncio.Task[None]] = set()  # links being replaced or removed
        self.repair = BodyRepair(node, self._request)
        self.checkpoints = CheckpointBook(node)
        self.pulling = 0  # pulls storing records right now (receipt rounds wait for them)
        self.receipts = ReceiptSender(node, self.notify_all, lambda: self.pulling > 0)
        self._receipts_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ca_file = self.node.config.federation.ca_file
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.session = aiohttp.ClientSession(timeout=REQUEST_TIMEOUT,
                                             connector=aiohttp.TCPConnector(ssl=context))
        self.reconcile(self.node.peers)
        self.node.tasks.start("checkpoints", self.checkpoints.run)
        if self.node.config.receipts.enabled and self._receipts_task is None:
            self._receipts_task = self.node.tasks.start("receipts", self.receipts.run)

    async def stop(self) -> None:
        await self.node.tasks.stop("checkpoints")
        for link in list(self.links.values()):
            await link.stop()
        self.links.clear()
        if self._receipts_task is not None:  # the last round: nothing owed is left unsigned
            self.node.tasks.release("receipts")
            await cancel_and_wait(self._receipts_task)
            self._receipts_task = None
            try:
                await self.receipts.flush()
            except Exception as exc:  # shutting down: the store keeps what is owed
                log.warning("receipts owed at shutdown stay owed: %s", exc)
        while self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        self.verifier.shutdown(wait=False, cancel_futures=True)

    def reconcile(self, peers: PeersConfig) -> None:
        """Start links for new or changed peers and stop links for removed ones."""
        wanted = {peer.name: peer for peer in peers}
        for name, link in list(self.links.items()):
            if wanted.get(name) != link.peer:
                del self.links[name]
                self.repair.forget(name)  # our accept policy may have widened: back-fill
                # released now, so the new link of that name does not cancel it unawaited;
                # kept until done, so that stop() waits for it too
                self.node.tasks.release(link.task_name)
                stopping = asyncio.create_task(link.stop(), name=f"stop-{link.task_name}")
                self._stopping.add(stopping)
                stopping.add_done_callback(self._stopping.discard)
        for name, peer in wanted.items():
            if name not in self.links:
                if peer.insecure:
                    log.warning("peer %s: plain http to %s (allow_insecure_http = true in "
                                "peers.toml): anyone on the path can read and alter this "
                                "traffic", name, peer.url)
                link = PeerLink(self.node, peer, self.sync_with, self.send_notify)
                self.links[name] = link
                link.start(announce=self.announced)

    def announce(self) -> None:
        """We listen now (called once the node's listeners are up): hint every peer, so
        that a peer whose link backed off while we were down pulls from us at once, and
        do so for every link started from now on (a reload, a lease taken over)."""
        self.announced = True
        for link in self.links.values():
            link.poke(notify=True)

    def poke(self, peer_name: str) -> None:
        """The peer hinted us (``POST /v1/notify``): pull from it now, even in backoff."""
        link = self.links.get(peer_name)
        if link is not None:
            link.poke(from_peer=True)

    def health(self) -> dict[str, PeerHealth]:
        """Each linked peer's health, by peer name."""
        return {name: link.health for name, link in self.links.items()}

    def notify_all(self, except_peer: str | None = None) -> None:
        """Hint every peer (but the one we just pulled from) that we have new records."""
        for name, link in self.links.items():
            if name != except_peer:
                link.poke(notify=True)

    # -- signed HTTP ---------------------------------------------------------------------

    async def _request(self, peer: PeerConfig, method: str, path: str, *,
                       params: dict[str, str] | None = None, body: bytes = b"",
                       max_bytes: int) -> tuple[bytes, dict[str, str]]:
        """One signed request; an answer of 300 or more raises ``PeerProtocolError``, and
        no complete answer in time ``PeerTimeoutError``, each saying what happened.

        A redirect is not followed (the signature names its target, and a peer is pinned to
        its URL): it is refused naming its ``Location``, so the operator can fix the URL. A
        peer that has just restarted refuses requests created in the second it started
        (``CREATED_BEFORE_START``: it cannot know their nonces). That is no fault: we wait for
        the next second and sign the request again, once, rather than fail the round.
        """
        assert self.session is not None
        target = URL(peer.url + path)
        if params:
            target = target.with_query(params)
        try:
            for attempt in range(2):
                headers = sign_request(method=method, url=target, body=body,
                                       key=self.node.identity.node)
                if body:
                    headers["Content-Type"] = "application/json"
                async with self.session.request(method, target, data=body or None,
                                                headers=headers,
                                                allow_redirects=False) as response:
                    payload = await _read_capped(response, max_bytes)
                    if response.status < 300:
                        return payload, dict(response.headers)
                if (attempt == 0 and response.status == 401
                        and b'"CREATED_BEFORE_START"' in payload[:200]):
                    await asyncio.sleep(1.05 - time.time() % 1)
                    continue
                break
        except TimeoutError as exc:
            raise PeerTimeoutError(f"{method} {target}: "
                                   f"{_timeout_detail(exc, self.session.timeout)}") from exc
        if response.status < 400:
            location = response.headers.get("Location", "")
            raise PeerProtocolError(
                f"{method} {target}: HTTP {response.status} redirect to "
                f"{location[:300] or '(no Location header)'}; redirects are not followed: "
                f"if the peer moved, set its url in peers.toml", "REDIRECT", response.status)
        raise PeerProtocolError(f"{method} {path}: HTTP {response.status}: "
                                f"{payload[:300].decode('utf-8', 'replace')}",
                                "HTTP_ERROR", response.status)

    async def send_notify(self, peer: PeerConfig) -> None:
        await self._request(peer, "POST", "/v1/notify", body=b'{"origins":{}}',
                            max_bytes=65_536)

    async def fetch_heads(self, peer: PeerConfig) -> list[SignedRecord]:
        """The peer's heads of the origins we take from it (and of our own), parsed on a
        worker thread: up to ``max_page_bytes`` of them must not stall the event loop."""
        payload, _ = await self._request(peer, "GET", "/v1/heads",
                                         max_bytes=self.node.config.limits.max_page_bytes)
        wanted = None if peer.accept_vouched else {
            self.node.origin, *(key.id for key in peer.accept_origins)}
        return await asyncio.get_running_loop().run_in_executor(
            None, parse_heads, payload, wanted, peer.name)

    async def fetch_page(self, peer: PeerConfig, origin: str, after: int,
                         limit: int) -> list[bytes]:
        """A page of ``origin``'s log after ``after``. We say how many records (``limit``)
        and bytes (``max_bytes``) we take; a server with lower maxima sends less (SPEC §17),
        so peers with different limits still sync."""
        limits = self.node.config.limits
        payload, _ = await self._request(
            peer, "GET", f"/v1/log/{origin}",
            params={"after": str(after), "limit": str(limit),
                    "max_bytes": str(limits.max_page_bytes)},
            max_bytes=limits.max_page_bytes)
        lines = payload.splitlines()
        if len(lines) > limit:
            raise PeerProtocolError(f"{peer.name}: page of {len(lines)} records exceeds the "
                                    f"limit of {limit} we asked for", "PAGE_TOO_LONG")
        return lines

    # -- pulling -------------------------------------------------------------------------

    async def sync_with(self, peer: PeerConfig) -> int:
        """One anti-entropy round with ``peer``; returns how many records were stored.

        Whatever the round stored, even if it then failed (a verified prefix), is hinted to
        every other peer."""
        before = self.stored_from[peer.name]
        try:
            stored = await self._sync(peer)
            await self.exchange_checkpoints(peer)
            return stored
        except (ProtocolError, RecordRefusedError) as exc:
            self.node.metrics.records_rejected.labels(exc.code).inc()
            self.node.metrics.peer_faults.labels(peer.name, exc.code).inc()
            log.warning("peer fault: %s sent what we refuse (%s): %s", peer.name, exc.code, exc)
            raise
        finally:
            if self.stored_from[peer.name] > before:
                self.notify_all(except_peer=peer.name)

    async def exchange_checkpoints(self, peer: PeerConfig) -> None:
        """Read the peer's checkpoints and proofs (SPEC §20.3), after its log pages so that
        a checkpoint of what we just pulled can be judged and cosigned. A peer without the
        routes (404) gossips none; that is no fault."""
        max_bytes = self.node.config.limits.max_page_bytes
        for path, take in (("/v1/checkpoints", self.checkpoints.take_checkpoints),
                           ("/v1/proofs", self.checkpoints.take_proofs)):
            try:
                payload, _ = await self._request(peer, "GET", path, max_bytes=max_bytes)
            except PeerProtocolError as exc:
                if exc.status == 404:
                    continue
                raise
            await take(peer, payload.splitlines())

    async def _sync(self, peer: PeerConfig) -> int:
        stored = 0
        frozen = await self.node.store.read(lambda s: s.frozen())
        repairable: list[str] = []
        advertised = await self.fetch_heads(peer)
        for stub in advertised:
            origin = stub.head.origin
            if origin != self.node.origin and not peer.accepts_origin(origin):
                continue
            if origin != self.node.origin:
                repairable.append(origin)  # completing held stubs picks no branch: frozen too
            if origin in frozen:
                continue  # evidence is held; nothing more of it until an operator unfreezes
            ours = await self.node.store.read(lambda s: s.head(origin))  # noqa: B023 (awaited here)
            if ours is not None and stub.head.seq <= ours.seq:
                await self._check_known(peer, stub)
                continue
            if origin == self.node.origin:
                await self._check_own_head(peer, stub)
                await self._check_own_chain(peer, ours)
                await self.node.own_log_behind(peer.name, stub.head.seq)
            stored += await self.pull_origin(peer, origin, ours, stub.head.seq)
        await self._set_records_behind(peer, advertised)
        for origin in repairable:
            stored += await self.repair.repair(peer, origin)
        return stored

    async def _set_records_behind(self, peer: PeerConfig,
                                  advertised: Sequence[SignedRecord]) -> None:
        """``hashmesh_peer_records_behind{peer, origin}`` after a round's pulls: our head seq
        of each origin minus the one the peer advertised (0 when it advertised none)."""
        theirs = {stub.head.origin: stub.head.seq for stub in advertised}
        ours = {head.origin: head.seq for head in
                await self.node.store.read(lambda s: s.heads())}
        for origin in ours.keys() | theirs.keys():
            labelled(self.node.metrics.peer_lag, peer.name, self.node_name(origin)).set(
                ours.get(origin, 0) - theirs.get(origin, 0))

    async def pull_origin(self, peer: PeerConfig, origin: str, head: LogHead | None,
                          target: int) -> int:
        """Pull, verify and store ``origin``'s records from ``peer`` up to ``target``.

        Pipelined: while page k commits on the store's writer thread, page k+1 is verified
        (against the head page k leads to) and page k+2 is already being fetched. Commits stay
        in page order, each with its cursor, and a page is only committed once the one before
        it has been, so a cursor never points past what is committed; a fault in page k+1
        leaves page k committed.

        The read-ahead asks for the records after ``after + len(lines)``: where a page of a
        valid log ends, since seqs run without gaps. If the page turns out to end elsewhere
        (it fails, or stops at a conflict), the read-ahead is dropped unread. It stays within
        the round's ``MAX_PAGES_PER_ROUND`` pages.
        """
        limit = self.node.config.limits.max_page_records
        ring = await self.node.store.read(lambda s: s.keyring(origin))
        stored = 0
        committing: asyncio.Future[int] | None = None
        indexing = _IndexBatch(self.node)
        loop = asyncio.get_running_loop()
        ahead: tuple[int, asyncio.Future[list[bytes]]] | None = None  # (after, page)

        def fetch(after: int) -> tuple[int, asyncio.Future[list[bytes]]]:
            return after, asyncio.ensure_future(self.fetch_page(peer, origin, after, limit))

        self.pulling += 1
        try:
            for page in range(MAX_PAGES_PER_ROUND):
                after = head.seq if head is not None else 0
                if head is not None and after >= target:
                    break
                if ahead is None or ahead[0] != after:
                    _discard(ahead)
                    ahead = fetch(after)
                lines = await ahead[1]
                ahead = None
                if not lines:
                    break
                if after + len(lines) < target and page + 1 < MAX_PAGES_PER_ROUND:
                    ahead = fetch(after + len(lines))
                result = await loop.run_in_executor(None, verify_page, lines, origin, ring,
                                                    head, peer, self.verifier)
                if committing is not None:
                    done, committing = committing, None
                    stored += await done
                if result.records:
                    committing = self._commit_page(peer, origin, result.records, indexing)
                    head = result.head
                if result.fault is not None:
                    raise result.fault  # the verified prefix is committed on the way out
                if result.conflict is not None and result.conflict_seq is not None:
                    last, committing = committing, None
                    stored += await last if last is not None else 0
                    if not await self._gather_evidence(peer, origin, result.conflict_seq):
                        raise result.conflict
                    break
                if not result.records:
                    break
        finally:
            self.pulling -= 1
            _discard(ahead)
            try:
                if committing is not None:  # a fault in a later page leaves this committed
                    stored += await committing
            finally:  # even if that commit failed or we are cancelled: the index gets the rest
                await indexing.wait()
        return stored

    def _commit_page(self, peer: PeerConfig, origin: str, records: list[SignedRecord],
                     indexing: _IndexBatch) -> asyncio.Future[int]:
        """Store a verified page and advance the peer's cursor in one transaction.

        The page's changes are queued for the index on the writer thread, right after the
        commit (``queue_changes``), and ``indexing`` learns of it as soon as the commit is
        done, even if the caller is cancelled meanwhile: the commit cannot be called back.
        """
        node = self.node
        cursor = (peer.name, origin, records[-1].head.seq)

        def commit(store: NodeStore) -> Changes:
            return node.queue_changes(store.ingest(records, source=peer.name, cursor=cursor))

        write = asyncio.ensure_future(node.store.write(commit))

        def committed(done: asyncio.Future[Changes]) -> None:
            if not done.cancelled() and done.exception() is None:
                indexing.committed(done.result())
                node.metrics.records_ingested.inc(len(records))
                self.stored_from[peer.name] += len(records)
                self.observe_receipts(done.result().receipts)

        write.add_done_callback(committed)

        async def count() -> int:
            await asyncio.shield(write)
            return len(records)

        return asyncio.ensure_future(count())

    def observe_receipts(self, delays: Sequence[tuple[str, str, int]]) -> None:
        """Receipts stored by a pull, into the propagation histograms (SPEC §21)."""
        metrics = self.node.metrics
        for node, kind, delay_ms in delays:
            histogram = metrics.time_to_active if kind == "active" else metrics.time_to_removal
            labelled(histogram, self.node_name(node)).observe(max(0, delay_ms) / 1000)

    def node_name(self, origin: str) -> str:
        """A node as figures name it: the peer name we gave its origin, else its key id."""
        return self.node.peers.origin_name(origin) or origin

    async def _check_known(self, peer: PeerConfig, stub: SignedRecord) -> None:
        """A head at or below ours must be the record we hold at that seq."""
        origin, seq = stub.head.origin, stub.head.seq
        raw = await self.node.store.read(lambda s: s.record_at(origin, seq))
        if raw is None or SignedRecord.from_bytes(raw).id == stub.id:
            return
        await self._conflict(peer, SignedRecord.from_bytes(raw), stub)

    async def _check_own_head(self, peer: PeerConfig, stub: SignedRecord) -> None:
        """A head of our own log beyond ours must be signed by one of our origin's keys.

        Acting on it blocks our signing (``own_log_behind``), so an unsigned or forged claim
        by a peer is refused instead. Any key we ever granted counts (not only those valid at
        that seq): after a restore from backup our key ring may lag behind the log.
        """
        ring = await self.node.store.read(lambda s: s.keyring(stub.head.origin))
        keys = {self.node.origin, self.node.identity.signer.id, *ring.grants}
        path = f"{peer.name}:heads[{stub.head.origin}]"
        try:
            if stub.head.key not in keys:
                raise KeyNotAuthorisedError(f"{stub.head.key} is not a key of this node's "
                                            "origin", f"{path}.head.key")
            verify_signature(stub, path)
        except ProtocolError as exc:
            raise RecordRefusedError(f"{peer.name}: claims seq {stub.head.seq} of our own log "
                                     f"with a head we did not sign: {exc}", exc.code) from None

    async def _check_own_chain(self, peer: PeerConfig, ours: LogHead | None) -> None:
        """Before we stop signing, the peer must show the record after our head, linked to it.

        A head stub alone proves little: one signed by a key we revoked (and that may have
        leaked) can claim any seq with any ``prev``. The record at our seq + 1 must verify
        against our key ring, which is exact at that seq (it is built from every record up to
        our head), and name our head as ``prev``; only our own keys could have signed it, so
        our database really is behind.
        """
        origin = self.node.origin
        after = ours.seq if ours is not None else 0
        lines = await self.fetch_page(peer, origin, after, 1)
        path = f"{peer.name}:log[{origin}]"
        if not lines:
            raise RecordRefusedError(f"{path}: claims more of our own log than seq {after} but "
                                     f"serves no record after it", "OWN_LOG_UNLINKED")
        ring = await self.node.store.read(lambda s: s.keyring(origin))
        result = await asyncio.get_running_loop().run_in_executor(
            None, verify_page, lines[:1], origin, ring, ours, peer, None)
        if result.fault is not None:
            raise RecordRefusedError(f"{path}: its record after seq {after} of our own log "
                                     f"does not verify: {result.fault}", result.fault.code)
        if not result.records:
            raise RecordRefusedError(f"{path}: its record at seq {after + 1} of our own log "
                                     f"does not link to our head: {result.conflict}",
                                     "OWN_LOG_UNLINKED")

    async def _gather_evidence(self, peer: PeerConfig, origin: str, seq: int) -> bool:
        """The peer's record after ``seq`` does not link to ours: fetch its record at ``seq``.

        Returns ``True`` once a different valid record there is stored as evidence, ``False``
        if the peer's record at ``seq`` is ours (so the record that failed to link is bad).
        """
        lines = await self.fetch_page(peer, origin, seq - 1, 1)
        ours = await self.node.store.read(lambda s: s.record_at(origin, seq))
        if not lines or ours is None:
            raise PeerProtocolError(f"{peer.name}: chain of {origin} diverges at seq {seq} "
                                    "but the peer did not serve its record there")
        theirs = SignedRecord.from_bytes(lines[0], f"{peer.name}:log[0]")
        if (theirs.head.origin, theirs.head.seq) != (origin, seq):
            raise RecordRefusedError(f"{peer.name}:log[0]: asked for seq {seq} of {origin}, got "
                                     f"seq {theirs.head.seq} of {theirs.head.origin}",
                                     "WRONG_RECORD")
        if theirs.id == SignedRecord.from_bytes(ours).id:
            return False
        await self._conflict(peer, SignedRecord.from_bytes(ours), theirs)
        return True

    async def _conflict(self, peer: PeerConfig, ours: SignedRecord,
                        theirs: SignedRecord) -> None:
        origin = ours.head.origin
        ring = await self.node.store.read(lambda s: s.keyring(origin))
        try:
            ring.check(theirs.head.key, theirs.head.seq)
            verify_signature(theirs)
        except ProtocolError as exc:
            raise RecordRefusedError(f"{peer.name}: conflicting record for {origin} seq "
                                     f"{theirs.head.seq} does not verify: {exc}",
                                     exc.code) from None
        key_records = [SignedRecord.from_bytes(raw) for raw in
                       await self.node.store.read(lambda s: s.key_records(origin))]
        evidence = detect_equivocation(ours, theirs, key_records)
        if evidence is None:
            return
        try:
            evidence.check_against(ring)  # SPEC §11.1
        except (KeyRevokedError, KeyNotAuthorisedError) as exc:
            # A revoked key may have leaked: whoever holds it can sign a variant at any seq
            # it once covered, again after every unfreeze. That proves nothing against the
            # origin, so it freezes nothing; it is the fault of the peer that relays it.
            log.error("ALERT: peer %s serves a record of %s at seq %d that conflicts with the "
                      "one held (%s); refused as a peer fault, origin not frozen", peer.name,
                      origin, theirs.head.seq, exc)
            raise RecordRefusedError(f"{peer.name}: conflicting record for {origin} seq "
                                     f"{theirs.head.seq} involves a revoked key: {exc}; not "
                                     "evidence of equivocation", "REVOKED_KEY_CONFLICT") from None
        await self.node.record_equivocation(evidence, peer.name)


def evidence_summary(evidence: Evidence) -> str:
    return (f"origin {evidence.origin} signed two records at seq {evidence.seq}: "
            f"{evidence.first.id} and {evidence.second.id}")


def _timeout_detail(exc: TimeoutError, timeout: aiohttp.ClientTimeout) -> str:
    """Which of the session's limits ran out: aiohttp names the connect and socket read
    limits, and raises a bare ``TimeoutError`` when the total one runs out."""
    detail = str(exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"could not connect within {timeout.sock_connect} s ({detail or 'no detail'})"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return f"no byte for {timeout.sock_read} s while reading the answer ({detail})"
    return (f"no complete answer within {timeout.total} s (a peer that drips its answer "
            f"is cut off there){f'; {detail}' if detail else ''}")


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The response body, refusing anything larger than ``max_bytes``."""
    if response.content_length is not None and response.content_length > max_bytes:
        raise PeerProtocolError(f"response of {response.content_length} bytes exceeds the "
                                f"limit of {max_bytes}", "PAGE_TOO_LARGE")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65_536):
        size += len(chunk)
        if size > max_bytes:
            raise PeerProtocolError(f"response exceeds the limit of {max_bytes} bytes",
                                    "PAGE_TOO_LARGE")
        chunks.append(chunk)
    return b"".join(chunks)
