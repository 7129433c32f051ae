"""Self-contained proof that an origin equivocated.

Two records with the same ``(origin, seq)`` and different ids, both validly signed, prove
that the origin's keys signed two branches of its log (misbehaviour, a stolen key, or a
database restored from an old backup). The evidence holds the two heads as stubs (bodies
are not needed to prove the conflict) and the ``key`` records that authorised any non-root
signing key involved, so anyone can check it offline knowing only the origin id.

Revocation cannot be proven absent, so evidence shows that both keys were authorised at some
point before the conflicting seq; that is enough to prove the origin's keys signed both.

Whether evidence is grounds to *freeze* the origin is a second question, answered against the
verifier's own key ring (``check_against``, SPEC §11.1): a conflict signed by a key outside
its valid window, or by a key the root has since withdrawn, is what a thief of that key can
produce at will, so it is refused as a peer fault instead of freezing the origin again and
again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hashmesh.protocol.errors import ChainError, EvidenceError, KeyRevokedError, ProtocolError
from hashmesh.protocol.fields import Fields
from hashmesh.protocol.records import KeyBody, SignedRecord
from hashmesh.protocol.signing import KeyRing, verify_signature


class EquivocationError(ChainError):
    """Two valid records claim the same ``(origin, seq)``; ``evidence`` proves it offline.

    Part of the tree in ``errors.py``; defined here, beside the evidence it carries, so that
    the error module imports nothing of the protocol's.
    """

    code = "EQUIVOCATION"

    def __init__(self, message: str, evidence: Evidence, path: str = "") -> None:
        super().__init__(message, path)
        self.evidence = evidence


@dataclass(frozen=True)
class Evidence:
    """Two conflicting records of one origin at one seq, plus the key grants they rely on."""

    first: SignedRecord
    second: SignedRecord
    key_records: tuple[SignedRecord, ...] = ()

    FIELDS: ClassVar[frozenset[str]] = frozenset({"kind", "first", "second", "key_records"})
    KIND: ClassVar[str] = "equivocation"
    MAX_KEY_RECORDS: ClassVar[int] = 2

    @property
    def origin(self) -> str:
        return self.first.head.origin

    @property
    def seq(self) -> int:
        return self.first.head.seq

    @classmethod
    def from_json(cls, value: object, path: str = "evidence",
                  keyring: KeyRing | None = None) -> Evidence:
        """Parse and verify evidence; with ``keyring``, also ``check_against`` it."""
        fields = Fields(value, path, cls.FIELDS)
        if fields.raw("kind") != cls.KIND:
            raise EvidenceError(f"kind must be {cls.KIND!r}", fields.at("kind"))
        grants = fields.array("key_records", max_length=cls.MAX_KEY_RECORDS)
        gpath = fields.at("key_records")
        evidence = cls(
            first=SignedRecord.from_json(fields.raw("first"), fields.at("first")),
            second=SignedRecord.from_json(fields.raw("second"), fields.at("second")),
            key_records=tuple(SignedRecord.from_json(g, f"{gpath}[{i}]")
                              for i, g in enumerate(grants)),
        )
        evidence.verify(path)
        if keyring is not None:
            evidence.check_against(keyring, path)
        return evidence

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "first": self.first.to_json(),
            "second": self.second.to_json(),
            "key_records": [r.to_json() for r in self.key_records],
        }

    def verify(self, path: str = "evidence") -> None:
        """Raise ``EvidenceError`` unless this proves equivocation by ``self.origin``."""
        first, second = self.first.head, self.second.head
        if (first.origin, first.seq) != (second.origin, second.seq):
            raise EvidenceError("the two records are not at the same (origin, seq)", path)
        if self.first.id == self.second.id:
            raise EvidenceError("the two records are the same record", path)
        if self.first.id > self.second.id:
            raise EvidenceError("first and second must be sorted by record id", path)
        for name, record in (("first", self.first), ("second", self.second)):
            if not record.is_stub:
                # Evidence is served to anyone; a body could be restricted to some peers.
                raise EvidenceError("must be a stub (the body is withheld in evidence)",
                                    f"{path}.{name}.body")
        for name, record in (("first", self.first), ("second", self.second),
                             *((f"key_records[{i}]", r) for i, r in enumerate(self.key_records))):
            try:
                verify_signature(record, f"{path}.{name}")
            except ProtocolError as exc:
                raise EvidenceError(exc.reason, exc.path) from None
        for name, record in (("first", self.first), ("second", self.second)):
            self._check_key_granted(record, f"{path}.{name}.head.key")

    def check_against(self, keyring: KeyRing, path: str = "evidence") -> None:
        """Raise unless this evidence is grounds to freeze the origin under ``keyring``.

        Each record must be signed by the root key, or by a signing key whose window in the
        ring covers its seq (else ``KEY_NOT_AUTHORISED`` or ``KEY_REVOKED``) and has not been
        closed by a ``key_revoke`` since (else ``KEY_REVOKED``): once the root key has
        withdrawn a key, anything signed by it that conflicts with the origin's log is treated
        as a thief's forgery, a fault of the peer that served it. ``verify`` is assumed done.
        """
        if keyring.origin != self.origin:
            raise EvidenceError(f"checked against the key ring of {keyring.origin}",
                                f"{path}.first.head.origin")
        for name, record in (("first", self.first), ("second", self.second)):
            key, seq, where = record.head.key, record.head.seq, f"{path}.{name}.head.key"
            keyring.check(key, seq, where)
            window = keyring.window_at(key, seq)
            if window is not None and window.revoked_at is not None:
                raise KeyRevokedError(
                    f"key {key} was revoked at seq {window.revoked_at} after signing seq {seq}: "
                    "a conflict signed by a withdrawn key is a peer fault, not equivocation",
                    where)

    def _check_key_granted(self, record: SignedRecord, path: str) -> None:
        if record.head.key == self.origin:
            return
        for grant in self.key_records:
            if (grant.head.origin == self.origin and grant.head.key == self.origin
                    and isinstance(grant.body, KeyBody)
                    and grant.body.signing_key == record.head.key
                    and grant.head.seq < record.head.seq):
                return
        raise EvidenceError(f"no key record shows that {record.head.key} was authorised by "
                            f"{self.origin} before seq {record.head.seq}", path)
