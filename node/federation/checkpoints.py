"""Witnessed checkpoints on the node (SPEC §20): sign ours, check and cosign peers', alarm.

``CheckpointBook`` is what one node holds of every origin's checkpoints:

* as an **origin** it signs a checkpoint of its head every ``[checkpoints] interval_seconds``;
* from each **peer**, in every sync round, it reads ``GET /v1/checkpoints`` and, for each
  checkpoint, verifies it against its key ring of that origin, judges it against the chain it
  holds (``protocol.checkpoints.judge``), cosigns it with its node key if it **witnesses**
  that origin (``witness_for``) and the checkpoint names a head of its own chain, merges the
  cosignatures with what it already holds and keeps it. A checkpoint that disagrees with the
  chain is a split view: the proof is kept, alarmed and gossiped (``GET /v1/proofs``);
* from each peer it also reads ``GET /v1/proofs``: equivocation evidence freezes the origin
  as if found locally (after the key-ring check of SPEC §11.1), split-view proofs are kept;
* it **alarms** (``alarms``) when an origin listed in ``[checkpoints.witnesses]`` has no
  witnessed checkpoint newer than ``max_age_seconds`` (stale: withheld or stopped), or a
  witnessed checkpoint ahead of our chain for longer than ``max_behind_seconds`` (behind:
  records withheld), or when a split view is held.

A checkpoint that does not verify is a fault of the peer that served it (it fails the round,
as a refused page does); one this node cannot judge yet (an origin it holds nothing of, or a
checkpoint ahead of its chain signed by a key its ring does not know yet) is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from hashmesh.node.config.node import CheckpointsConfig
from hashmesh.node.config.peers import PeerConfig
from hashmesh.node.federation.errors import RecordRefusedError
from hashmesh.node.federation.interface import LocalNode
from hashmesh.protocol import canonical
from hashmesh.protocol.checkpoints import (
    Checkpoint,
    SplitView,
    Verdict,
    judge,
    parse_proof_kind,
)
from hashmesh.protocol.errors import (
    KeyNotAuthorisedError,
    KeyRevokedError,
    SchemaError,
    UnknownTypeError,
)
from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.keys import PublicKey
from hashmesh.protocol.records import MAX_RECORD_BYTES, SignedRecord

log = logging.getLogger("hashmesh.checkpoints")

MAX_KEPT_UNWITNESSED = 4  # newer-than-witnessed checkpoints kept (and served) per origin
MAX_FUTURE_MS = 60_000  # a witness cosigns nothing dated further ahead of its clock
MAX_PROOF_BYTES = 4 * MAX_RECORD_BYTES
ALARM_KINDS = ("stale", "behind", "split_view")


def checkpoint_cid(checkpoint: Checkpoint) -> str:
    """The identity of a checkpoint: SHA-256 of the bytes both kinds of signature cover."""
    return hashlib.sha256(checkpoint.body.raw).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Alarm:
    kind: str  # stale | behind | split_view
    origin: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "origin": self.origin, "detail": self.detail}


class CheckpointBook:
    """This node's checkpoints of every origin, its cosigning, and its alarms."""

    def __init__(self, node: LocalNode) -> None:
        self.node = node
        self.started_ms = now_ms()
        self._alarmed: set[tuple[str, str, str]] = set()  # (kind, origin, key) already logged
        self._lock = asyncio.Lock()  # one merge at a time: read, merge, write

    @property
    def config(self) -> CheckpointsConfig:
        return self.node.config.checkpoints

    # -- our own checkpoints -------------------------------------------------------------

    async def sign_own(self) -> Checkpoint | None:
        """Sign a checkpoint of our head now (``None`` while our log is empty, or while
        signing is blocked: a restored database's head is not our log's)."""
        origin = self.node.origin
        head = await self.node.store.read(lambda s: s.head(origin))
        blocked = await self.node.store.read(lambda s: s.signing_blocked())
        if head is None or blocked is not None:
            return None  # nothing yet, or our database may be behind our log: say nothing
        checkpoint = Checkpoint.sign(self.node.identity.signer, origin=origin, seq=head.seq,
                                     record_id=head.id, ts=max(now_ms(), head.ts))
        await self._keep(checkpoint)
        return checkpoint

    async def run(self) -> None:
        """The background loop: sign every ``interval_seconds``, check alarms every tick."""
        interval = self.config.interval_seconds
        tick = max(1, min(10, self.config.max_age_seconds // 3,
                          self.config.max_behind_seconds // 3))
        next_sign = 0.0
        while True:
            if interval and time.monotonic() >= next_sign:
                await self.sign_own()
                next_sign = time.monotonic() + interval
            await self.alarms()
            await asyncio.sleep(tick)

    # -- what a peer serves --------------------------------------------------------------

    async def take_checkpoints(self, peer: PeerConfig, lines: list[bytes]) -> int:
        """Verify, judge, cosign and keep the peer's checkpoints; returns how many were kept.

        Raises the ``ProtocolError`` of the first checkpoint that does not verify (a fault
        of ``peer``), after keeping the ones before it."""
        kept = 0
        frozen = await self.node.store.read(lambda s: s.frozen())
        for index, line in enumerate(lines):
            path = f"{peer.name}:checkpoints[{index}]"
            checkpoint = Checkpoint.from_bytes(line, path)
            if checkpoint.origin in frozen:
                continue
            if await self._take(checkpoint, path, peer.name):
                kept += 1
        return kept

    async def _take(self, checkpoint: Checkpoint, path: str, source: str) -> bool:
        origin = checkpoint.origin
        store = self.node.store
        head = await store.read(lambda s: s.head(origin))
        if head is None:
            return False  # we hold nothing of it: no key ring to judge by
        ring = await store.read(lambda s: s.keyring(origin))
        try:
            checkpoint.verify(ring, path)
        except KeyNotAuthorisedError:
            if checkpoint.seq > head.seq:
                return False  # signed by a key granted after our head: judge it later
            raise
        held = None
        if checkpoint.seq <= head.seq:
            raw = await store.read(lambda s: s.record_at(origin, checkpoint.seq))
            held = None if raw is None else SignedRecord.from_bytes(raw)
        judgement = judge(checkpoint, head.seq, held)
        if judgement.verdict is Verdict.SPLIT_VIEW:
            assert judgement.proof is not None
            await self._keep_split_view(judgement.proof, f"a checkpoint served by {source}")
            return False
        if judgement.verdict is Verdict.CONSISTENT and self._may_cosign(checkpoint):
            checkpoint = checkpoint.cosign(self.node.identity.node)
        await self._keep(checkpoint)
        return True

    def _may_cosign(self, checkpoint: Checkpoint) -> bool:
        """SPEC §20.2: we witness its origin, and its time is neither future nor too old
        (that it verifies and names a head of our chain is established by the caller)."""
        if checkpoint.origin not in self.config.witness_for:
            return False
        now = now_ms()
        return (checkpoint.ts <= now + MAX_FUTURE_MS
                and now - checkpoint.ts <= self.config.max_age_seconds * 1000)

    async def _keep(self, checkpoint: Checkpoint) -> None:
        """Merge with the same checkpoint held, store, and prune the origin's old ones."""
        origin, cid = checkpoint.origin, checkpoint_cid(checkpoint)
        witnesses = self.witnesses_of(origin)
        quorum = self.config.quorum
        async with self._lock:
            held = await self.node.store.read(lambda s: s.checkpoints_of(origin))
            parsed = [(Checkpoint.from_bytes(raw), received) for raw, received in held]
            for other, _ in parsed:
                if checkpoint_cid(other) == cid:
                    checkpoint = other.merge(checkpoint)
                    if checkpoint.raw == other.raw:
                        return  # nothing new: no write (peers serve it every round)
            raw, when = checkpoint.raw, now_ms()
            await self.node.store.write(lambda s: s.save_checkpoint(
                origin, cid, checkpoint.seq, checkpoint.ts, raw, when))
            merged = {checkpoint_cid(c): c for c, _ in parsed}
            merged[cid] = checkpoint
            newest_first = sorted(merged.values(), key=lambda c: (-c.ts, -c.seq))
            keep: list[str] = []
            unwitnessed = 0
            for candidate in newest_first:
                if candidate.witnessed_by(witnesses, quorum):
                    keep.append(checkpoint_cid(candidate))
                    break
                if unwitnessed < MAX_KEPT_UNWITNESSED:
                    keep.append(checkpoint_cid(candidate))
                    unwitnessed += 1
            drop = [c for c in merged if c not in keep]
            if drop:
                await self.node.store.write(lambda s: s.delete_checkpoints(origin, drop))

    # -- gossiped proofs -----------------------------------------------------------------

    async def take_proofs(self, peer: PeerConfig, lines: list[bytes]) -> None:
        """Equivocation evidence and split-view proofs a peer holds, checked as our own."""
        store = self.node.store
        frozen = await store.read(lambda s: s.frozen())
        for index, line in enumerate(lines):
            path = f"{peer.name}:evidence[{index}]"
            value = canonical.decode(line, max_bytes=MAX_PROOF_BYTES, path=path)
            kind = parse_proof_kind(value, path)
            if kind == Evidence.KIND:
                evidence = Evidence.from_json(value, path)
                origin = evidence.origin
                if origin in frozen or await store.read(lambda s: s.head(origin)) is None:  # noqa: B023
                    continue
                ring = await store.read(lambda s: s.keyring(origin))  # noqa: B023
                try:
                    evidence.check_against(ring, path)
                except (KeyRevokedError, KeyNotAuthorisedError) as exc:
                    raise RecordRefusedError(f"{path}: evidence against {origin} involves a "
                                             f"revoked key: {exc}; not equivocation",
                                             "REVOKED_KEY_CONFLICT") from None
                await self.node.record_equivocation(evidence, f"{peer.name} (gossiped evidence)")
                frozen[origin] = evidence.seq - 1
            elif kind == SplitView.KIND:
                origin = _proof_origin(value, path)
                if await store.read(lambda s: s.head(origin)) is None:  # noqa: B023
                    continue
                ring = await store.read(lambda s: s.keyring(origin))  # noqa: B023
                proof = SplitView.from_json(value, path, keyring=ring)
                await self._keep_split_view(proof, f"a proof gossiped by {peer.name}")
            else:
                raise UnknownTypeError(f"unknown proof kind {kind!r:.40} (expected "
                                       "equivocation or split_view)", f"{path}.kind")

    async def _keep_split_view(self, proof: SplitView, how: str) -> None:
        cid = checkpoint_cid(proof.checkpoint)
        value, when = proof.to_json(), now_ms()
        new = await self.node.store.write(lambda s: s.add_split_view(
            proof.origin, proof.seq, cid, proof.record.id, value, when))
        if new:
            log.error("ALERT: split view of origin %s at seq %d: its keys signed a checkpoint "
                      "of record %s, but this node holds record %s there (seen in %s); "
                      "proof kept and gossiped", proof.origin, proof.seq, proof.checkpoint.id,
                      proof.record.id, how)
        await self.alarms()

    async def proof_lines(self) -> list[bytes]:
        """What ``GET /v1/proofs`` serves: our equivocation evidence and split views."""
        evidence = await self.node.store.read(lambda s: s.evidence())
        splits = await self.node.store.read(lambda s: s.split_views())
        return [canonical.encode(value) for value in (*evidence, *splits)]

    async def checkpoint_lines(self) -> list[bytes]:
        """What ``GET /v1/checkpoints`` serves: every checkpoint we keep, merged."""
        rows = await self.node.store.read(lambda s: s.all_checkpoints())
        return [raw for _, raw, _ in rows]

    # -- alarms --------------------------------------------------------------------------

    def witnesses_of(self, origin: str) -> frozenset[str]:
        return frozenset(self.config.witnesses_of(origin))

    async def alarms(self) -> dict[str, Any]:
        """The checkpoint state of every watched origin and every alarm; sets the gauges
        and logs an ``ALERT`` line when an alarm starts."""
        config, store, now = self.config, self.node.store, now_ms()
        alarms: list[Alarm] = []
        origins: dict[str, Any] = {}
        for origin in config.witnesses:
            witnesses = self.witnesses_of(origin)
            held = await store.read(lambda s: s.checkpoints_of(origin))  # noqa: B023
            head = await store.read(lambda s: s.head(origin))  # noqa: B023
            head_seq = head.seq if head is not None else 0
            witnessed = [(c, received) for c, received in
                         ((Checkpoint.from_bytes(raw), received) for raw, received in held)
                         if c.witnessed_by(witnesses, config.quorum)]
            newest = max(witnessed, key=lambda pair: pair[0].ts, default=None)
            age = None if newest is None else max(0, now - newest[0].ts) / 1000
            if newest is None:
                if now - self.started_ms > config.max_age_seconds * 1000:
                    alarms.append(Alarm("stale", origin, "no witnessed checkpoint received in "
                                        f"{config.max_age_seconds} s"))
            elif age is not None and age > config.max_age_seconds:
                alarms.append(Alarm("stale", origin, f"newest witnessed checkpoint (seq "
                                    f"{newest[0].seq}) is {age:.0f} s old, over "
                                    f"{config.max_age_seconds} s"))
            ahead = [(c, received) for c, received in witnessed if c.seq > head_seq]
            overdue = [c for c, received in ahead
                       if now - received > config.max_behind_seconds * 1000]
            if overdue:
                top = max(c.seq for c in overdue)
                alarms.append(Alarm("behind", origin, f"witnesses hold seq {top} but this "
                                    f"node has only seq {head_seq}, for over "
                                    f"{config.max_behind_seconds} s"))
            self.node.metrics.checkpoint_age.labels(origin).set(-1 if age is None else age)
            origins[origin] = {
                "head_seq": head_seq,
                "witnesses": sorted(witnesses),
                "newest_witnessed": None if newest is None else {
                    "seq": newest[0].seq, "id": newest[0].id, "ts": newest[0].ts,
                    "age_seconds": age, "cosigned_by": sorted(newest[0].witnesses & witnesses)},
            }
        splits = await store.read(lambda s: s.split_views())
        for value in splits:
            checkpoint = value["checkpoint"]["checkpoint"]
            alarms.append(Alarm("split_view", checkpoint["origin"],
                                f"seq {checkpoint['seq']}: a checkpoint names record "
                                f"{checkpoint['id']}, a node holds "
                                f"{SignedRecord.from_json(value['record']).id}"))
        for kind in ALARM_KINDS:
            self.node.metrics.checkpoint_alarms.labels(kind).set(
                sum(1 for alarm in alarms if alarm.kind == kind))
        self._log_new(alarms)
        return {"origins": origins, "alarms": [a.to_json() for a in alarms],
                "split_views": len(splits)}

    def _log_new(self, alarms: list[Alarm]) -> None:
        current = {(a.kind, a.origin, a.detail if a.kind == "split_view" else "")
                   for a in alarms}
        for alarm in alarms:
            key = (alarm.kind, alarm.origin, alarm.detail if alarm.kind == "split_view" else "")
            if key not in self._alarmed and alarm.kind != "split_view":
                log.error("ALERT: checkpoints of origin %s: %s (%s)", alarm.origin,
                          alarm.kind, alarm.detail)
        self._alarmed = current


def _proof_origin(value: dict[str, Any], path: str) -> str:
    """The origin a split-view proof is about (to find the key ring it is judged by)."""
    try:
        origin = value["checkpoint"]["checkpoint"]["origin"]
    except (KeyError, TypeError):
        origin = None
    if not isinstance(origin, str):
        raise SchemaError("missing or malformed", f"{path}.checkpoint.checkpoint.origin")
    return PublicKey.from_id(origin, f"{path}.checkpoint.checkpoint.origin").id

