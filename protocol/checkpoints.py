"""Signed checkpoints of an origin's log, witness cosignatures, and split-view proofs (SPEC §20).

A checkpoint is the origin's signed statement "my log's head is ``(seq, id)`` at time ``ts``".
Witnesses (other organisations' node keys) cosign the same bytes once they have checked that
the chain they hold contains that head, and nodes gossip checkpoints, merging cosignatures.
A node whose chain disagrees with a verified checkpoint holds a *split view* proof: the
origin's keys signed two different heads at one seq. This module is pure: parsing with
located errors, signing, verification against a key ring, merging and ``judge``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from hashmesh.protocol import canonical
from hashmesh.protocol.errors import (
    BadSignatureError,
    EvidenceError,
    KeyRevokedError,
    ProtocolError,
    SchemaError,
)
from hashmesh.protocol.fields import Fields, check_string
from hashmesh.protocol.keys import PublicKey, SigningKey, b64url_encode
from hashmesh.protocol.records import RECORD_ID_PATTERN, SignedRecord, decode_signature
from hashmesh.protocol.signing import KeyRing, verify_signature

CHECKPOINT_DOMAIN = b"hashmesh/checkpoint/v1\n"
COSIGNATURE_DOMAIN = b"hashmesh/cosignature/v1\n"
MAX_CHECKPOINT_BYTES = 8_192
MAX_COSIGNATURES = 16
MAX_SEQ = 2**53 - 1


@dataclass(frozen=True)
class CheckpointBody:
    """What the origin and its witnesses sign: ``(origin, seq, id, ts)`` and the origin's key."""

    origin: str
    seq: int
    id: str
    ts: int
    key: str

    FIELDS: ClassVar[frozenset[str]] = frozenset({"origin", "seq", "id", "ts", "key"})

    @classmethod
    def from_json(cls, value: object, path: str) -> CheckpointBody:
        fields = Fields(value, path, cls.FIELDS)
        return cls(
            origin=PublicKey.from_id(fields.raw("origin"), fields.at("origin")).id,
            seq=fields.integer("seq", minimum=1),
            id=fields.string("id", pattern=RECORD_ID_PATTERN, what="record id"),
            ts=fields.integer("ts"),
            key=PublicKey.from_id(fields.raw("key"), fields.at("key")).id,
        )

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "seq": self.seq, "id": self.id, "ts": self.ts,
                "key": self.key}

    @property
    def raw(self) -> bytes:
        """``C`` of SPEC §20.1: the canonical bytes both kinds of signature cover."""
        return canonical.encode(self.to_json())


@dataclass(frozen=True)
class Cosignature:
    """A witness's signature over a checkpoint's ``C``; ``witness`` is its node key."""

    witness: str
    sig: bytes

    FIELDS: ClassVar[frozenset[str]] = frozenset({"witness", "sig"})

    @classmethod
    def from_json(cls, value: object, path: str) -> Cosignature:
        fields = Fields(value, path, cls.FIELDS)
        return cls(witness=PublicKey.from_id(fields.raw("witness"), fields.at("witness")).id,
                   sig=decode_signature(fields.raw("sig"), fields.at("sig")))

    def to_json(self) -> dict[str, Any]:
        return {"witness": self.witness, "sig": b64url_encode(self.sig)}


@dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint with the cosignatures gathered so far (sorted by witness)."""

    body: CheckpointBody
    sig: bytes
    cosignatures: tuple[Cosignature, ...] = field(default=())

    FIELDS: ClassVar[frozenset[str]] = frozenset({"checkpoint", "sig", "cosignatures"})

    @property
    def origin(self) -> str:
        return self.body.origin

    @property
    def seq(self) -> int:
        return self.body.seq

    @property
    def id(self) -> str:
        return self.body.id

    @property
    def ts(self) -> int:
        return self.body.ts

    @property
    def witnesses(self) -> frozenset[str]:
        return frozenset(c.witness for c in self.cosignatures)

    # -- wire form ---------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes, path: str = "checkpoint") -> Checkpoint:
        """Parse one checkpoint: size, strict JSON, schema, canonical form (SPEC §20.1).

        Signatures are not checked here (that needs the origin's key ring: ``verify``)."""
        value = canonical.decode(data, max_bytes=MAX_CHECKPOINT_BYTES, path=path)
        return cls.from_json(value, path)

    @classmethod
    def from_json(cls, value: object, path: str = "checkpoint") -> Checkpoint:
        fields = Fields(value, path, cls.FIELDS)
        body = CheckpointBody.from_json(fields.raw("checkpoint"), fields.at("checkpoint"))
        sig = decode_signature(fields.raw("sig"), fields.at("sig"))
        entries = fields.array("cosignatures", max_length=MAX_COSIGNATURES)
        cpath = fields.at("cosignatures")
        cosignatures = tuple(Cosignature.from_json(entry, f"{cpath}[{index}]")
                             for index, entry in enumerate(entries))
        for index in range(1, len(cosignatures)):
            if cosignatures[index].witness <= cosignatures[index - 1].witness:
                raise SchemaError("cosignatures must be sorted by witness, each witness once",
                                  f"{cpath}[{index}].witness")
        checkpoint = cls(body, sig, cosignatures)
        canonical.encode(checkpoint.to_json(), path)  # every value is in the strict domain
        return checkpoint

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint": self.body.to_json(), "sig": b64url_encode(self.sig),
                "cosignatures": [c.to_json() for c in self.cosignatures]}

    @property
    def raw(self) -> bytes:
        return canonical.encode(self.to_json())

    # -- signing -----------------------------------------------------------------------

    @classmethod
    def sign(cls, signer: SigningKey, *, origin: str, seq: int, record_id: str,
             ts: int) -> Checkpoint:
        """The origin's checkpoint of its head ``(seq, record_id)``, signed by ``signer``."""
        body = CheckpointBody(origin=origin, seq=seq, id=record_id, ts=ts, key=signer.id)
        checkpoint = cls(body, signer.sign(CHECKPOINT_DOMAIN + body.raw))
        return cls.from_bytes(checkpoint.raw)  # never emit what we would refuse

    def cosign(self, witness: SigningKey) -> Checkpoint:
        """This checkpoint with ``witness``'s cosignature added (replacing its old one)."""
        own = Cosignature(witness.id, witness.sign(COSIGNATURE_DOMAIN + self.body.raw))
        return self.with_cosignatures([own])

    def with_cosignatures(self, extra: list[Cosignature] | tuple[Cosignature, ...]
                          ) -> Checkpoint:
        """The union by witness of ours and ``extra`` (``extra`` wins a tie), at most 16."""
        merged = {c.witness: c for c in self.cosignatures}
        merged.update({c.witness: c for c in extra})
        ordered = tuple(merged[w] for w in sorted(merged))[:MAX_COSIGNATURES]
        return Checkpoint(self.body, self.sig, ordered)

    def merge(self, other: Checkpoint) -> Checkpoint:
        """Both checkpoints' cosignatures; they must be the same checkpoint (SPEC §20.1)."""
        if other.body != self.body or other.sig != self.sig:
            raise ValueError("only the same checkpoint can be merged")
        return self.with_cosignatures(other.cosignatures)

    # -- verification ------------------------------------------------------------------

    def verify(self, keyring: KeyRing, path: str = "checkpoint") -> None:
        """Key validity (at ``seq + 1``), origin signature, then every cosignature (SPEC §20.1,
        in that order)."""
        body = self.body
        if keyring.origin != body.origin:
            raise EvidenceError(f"checked against the key ring of {keyring.origin}",
                                f"{path}.checkpoint.origin")
        # the signer speaks from its head: the key must be one that may sign the next record
        check_key_still_valid(keyring, body.key, body.seq + 1, f"{path}.checkpoint.key")
        if not PublicKey.from_id(body.key).verify(CHECKPOINT_DOMAIN + body.raw, self.sig):
            raise BadSignatureError(f"checkpoint signature does not verify under {body.key}",
                                    f"{path}.sig")
        for index, cosignature in enumerate(self.cosignatures):
            if not PublicKey.from_id(cosignature.witness).verify(
                    COSIGNATURE_DOMAIN + body.raw, cosignature.sig):
                raise BadSignatureError(
                    f"cosignature does not verify under witness {cosignature.witness}",
                    f"{path}.cosignatures[{index}].sig")

    def witnessed_by(self, witnesses: frozenset[str] | set[str], quorum: int = 1) -> bool:
        """Whether at least ``quorum`` cosignatures are by the configured ``witnesses``
        (``verify`` is assumed done; an empty witness set never witnesses)."""
        return bool(witnesses) and len(self.witnesses & set(witnesses)) >= quorum


def check_key_still_valid(keyring: KeyRing, key: str, seq: int, path: str) -> None:
    """The rule of SPEC §11.1 for statements read off the chain: the root key, or a signing
    key whose window covers ``seq`` and has not been closed since."""
    keyring.check(key, seq, path)
    window = keyring.window_at(key, seq)
    if window is not None and window.revoked_at is not None:
        raise KeyRevokedError(f"key {key} was revoked at seq {window.revoked_at}: what it "
                              "signs off the chain proves nothing against the origin", path)


# -- judging a checkpoint against a chain -----------------------------------------------------


class Verdict(Enum):
    CONSISTENT = "consistent"
    AHEAD = "ahead"
    SPLIT_VIEW = "split_view"


@dataclass(frozen=True)
class SplitView:
    """Proof that the origin's keys signed a checkpoint of a chain other than ``record``'s."""

    checkpoint: Checkpoint
    record: SignedRecord  # a stub of the record the judging node holds at the checkpoint's seq

    FIELDS: ClassVar[frozenset[str]] = frozenset({"kind", "checkpoint", "record"})
    KIND: ClassVar[str] = "split_view"

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def seq(self) -> int:
        return self.checkpoint.seq

    @classmethod
    def from_json(cls, value: object, path: str = "evidence", *,
                  keyring: KeyRing) -> SplitView:
        """Parse and check a proof against the verifier's key ring of its origin."""
        fields = Fields(value, path, cls.FIELDS)
        if fields.raw("kind") != cls.KIND:
            raise EvidenceError(f"kind must be {cls.KIND!r}", fields.at("kind"))
        proof = cls(Checkpoint.from_json(fields.raw("checkpoint"), fields.at("checkpoint")),
                    SignedRecord.from_json(fields.raw("record"), fields.at("record")))
        proof.verify(keyring, path)
        return proof

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.KIND, "checkpoint": self.checkpoint.to_json(),
                "record": self.record.to_json()}

    def verify(self, keyring: KeyRing, path: str = "evidence") -> None:
        record, checkpoint = self.record, self.checkpoint
        rpath = f"{path}.record"
        if not record.is_stub:
            raise EvidenceError("must be a stub (the body is withheld in evidence)",
                                f"{rpath}.body")
        if (record.head.origin, record.head.seq) != (checkpoint.origin, checkpoint.seq):
            raise EvidenceError("the record is not at the checkpoint's (origin, seq)",
                                f"{rpath}.head")
        if record.id == checkpoint.id:
            raise EvidenceError("the record is the one the checkpoint names: no split view",
                                rpath)
        checkpoint.verify(keyring, f"{path}.checkpoint")
        check_key_still_valid(keyring, record.head.key, record.head.seq, f"{rpath}.head.key")
        verify_signature(record, rpath)


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    proof: SplitView | None = None


def judge(checkpoint: Checkpoint, head_seq: int, held: SignedRecord | None) -> Judgement:
    """Judge a verified checkpoint against the chain a node holds (SPEC §20.4).

    ``head_seq`` is the node's head of the checkpoint's origin (0 for none) and ``held`` the
    node's record at ``checkpoint.seq`` (needed when that seq is at or below the head).
    """
    if checkpoint.seq > head_seq:
        return Judgement(Verdict.AHEAD)
    if held is None:
        raise ValueError(f"the record at seq {checkpoint.seq} is needed to judge it")
    if (held.head.origin, held.head.seq) != (checkpoint.origin, checkpoint.seq):
        raise ValueError("the record given is not at the checkpoint's (origin, seq)")
    if held.id == checkpoint.id:
        return Judgement(Verdict.CONSISTENT)
    return Judgement(Verdict.SPLIT_VIEW, SplitView(checkpoint, held.stub()))


def parse_proof_kind(value: object, path: str) -> str:
    """The ``kind`` of a gossiped proof (``equivocation`` or ``split_view``), located."""
    if not isinstance(value, dict):
        raise SchemaError("expected an object", path)
    if "kind" not in value:
        raise SchemaError("missing required field", f"{path}.kind")
    return check_string(value["kind"], f"{path}.kind", max_length=32)


__all__ = [
    "CHECKPOINT_DOMAIN", "COSIGNATURE_DOMAIN", "MAX_CHECKPOINT_BYTES", "MAX_COSIGNATURES",
    "Checkpoint", "CheckpointBody", "Cosignature", "Judgement", "ProtocolError", "SplitView",
    "Verdict", "check_key_still_valid", "judge", "parse_proof_kind",
]
