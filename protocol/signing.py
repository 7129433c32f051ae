"""Creating and verifying signed records, and the per-origin key ring.

Verification runs in a fixed order so that every implementation reports the same error for
the same bad input: schema, canonical form (both in ``SignedRecord.from_bytes``), key
validity at the record's seq, signature, then chain linkage when the previous record is
known (``protocol/log.py``).

Key validity is measured in sequence numbers, never in wall-clock time: the root key is
always valid; a signing key is valid for records with ``seq`` greater than the seq of the
``key`` record that authorised it, and up to (and including) the seq of the ``key_revoke``
record that withdrew it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hashmesh.protocol.errors import (
    BadSignatureError,
    KeyNotAuthorisedError,
    KeyRevokedError,
    SchemaError,
)
from hashmesh.protocol.keys import PublicKey, SigningKey
from hashmesh.protocol.records import (
    Body,
    Distribution,
    Head,
    KeyBody,
    KeyRevokeBody,
    SignedRecord,
    body_digest,
    signed_message,
)


@dataclass(frozen=True)
class KeyGrant:
    """One signing key's validity window, in the origin's seq numbers."""

    key: str
    authorised_at: int
    revoked_at: int | None = None


@dataclass
class KeyRing:
    """The signing keys of one origin, built by applying its key records in seq order."""

    origin: str
    grants: dict[str, KeyGrant] = field(default_factory=dict)

    def check(self, key: str, seq: int, path: str = "head.key") -> None:
        """Raise unless ``key`` may sign this origin's record at ``seq``."""
        if key == self.origin:
            return
        grant = self.grants.get(key)
        if grant is None or seq <= grant.authorised_at:
            raise KeyNotAuthorisedError(
                f"key {key} is not authorised by origin {self.origin} before seq {seq}", path)
        if grant.revoked_at is not None and seq > grant.revoked_at:
            raise KeyRevokedError(
                f"key {key} was revoked at seq {grant.revoked_at}; cannot sign seq {seq}", path)

    def apply(self, record: SignedRecord) -> None:
        """Take a verified ``key`` or ``key_revoke`` record into account; ignore others."""
        body = record.body
        seq = record.head.seq
        if isinstance(body, KeyBody | KeyRevokeBody) and record.head.origin != self.origin:
            raise KeyNotAuthorisedError(
                f"key record of origin {record.head.origin} applied to the key ring of "
                f"{self.origin}", "record.head.origin")
        if isinstance(body, KeyBody):
            if body.signing_key == self.origin:
                raise SchemaError("the root key needs no authorisation", "body.signing_key")
            existing = self.grants.get(body.signing_key)
            if existing is None or existing.revoked_at is not None:
                self.grants[body.signing_key] = KeyGrant(body.signing_key, seq)
        elif isinstance(body, KeyRevokeBody):
            if body.signing_key == self.origin:
                raise SchemaError("the root key cannot be revoked", "body.signing_key")
            existing = self.grants.get(body.signing_key)
            if existing is not None and existing.revoked_at is None:
                self.grants[body.signing_key] = KeyGrant(
                    existing.key, existing.authorised_at, revoked_at=seq)

    def active_keys(self) -> list[str]:
        """Signing keys that may sign the next record (the root key is always allowed)."""
        return [g.key for g in self.grants.values() if g.revoked_at is None]


def sign_record(
    *,
    signer: SigningKey,
    origin: str,
    seq: int,
    prev: str | None,
    ts: int,
    body: Body,
    dist: Distribution | None = None,
) -> SignedRecord:
    """Build, canonicalise and sign one record. The caller owns seq/prev bookkeeping."""
    head = Head(
        type=body.TYPE, origin=origin, seq=seq, prev=prev, key=signer.id, ts=ts,
        dist=dist or Distribution(), digest=body_digest(body),
    )
    unsigned = SignedRecord.assemble(head, body, b"\x00" * 64)
    signature = signer.sign(signed_message(unsigned.head_bytes))
    record = SignedRecord.assemble(head, body, signature)
    # Round-trip through the strict parser so that we never emit what we would refuse.
    return SignedRecord.from_bytes(record.raw)


def signature_verifies(record: SignedRecord) -> bool:
    """Whether ``head.key`` signed this record's head (the Ed25519 check alone).

    Depends on nothing but the record, so a receiver may run it ahead of time and in parallel
    (PyNaCl releases the GIL) and pass the answer to ``verify(..., signature_ok=...)``.
    """
    return PublicKey.from_id(record.head.key).verify(signed_message(record.head_bytes),
                                                     record.sig)


def verify_signature(record: SignedRecord, path: str = "record",
                     signature_ok: bool | None = None) -> None:
    """Raise ``BadSignatureError`` unless ``head.key`` signed this record's head.

    ``signature_ok`` is ``signature_verifies(record)`` if the caller already computed it.
    """
    PublicKey.from_id(record.head.key, f"{path}.head.key")
    if signature_ok is None:
        signature_ok = signature_verifies(record)
    if not signature_ok:
        raise BadSignatureError(f"signature does not verify under {record.head.key}",
                                f"{path}.sig")


def verify(record: SignedRecord, keyring: KeyRing, path: str = "record", *,
           signature_ok: bool | None = None) -> None:
    """Check key validity at the record's seq, then its signature.

    Schema, canonical form and body digest were checked when ``record`` was parsed; chain
    linkage is ``protocol.log.check_next``. ``signature_ok``, when given, is the result of
    ``signature_verifies(record)`` computed ahead (e.g. for a whole page in parallel): the
    checks and the error reported are the same, only the Ed25519 work is not repeated.
    """
    if record.head.origin != keyring.origin:
        raise KeyNotAuthorisedError(
            f"record of origin {record.head.origin} checked against the key ring of "
            f"{keyring.origin}", f"{path}.head.origin")
    keyring.check(record.head.key, record.head.seq, f"{path}.head.key")
    verify_signature(record, path, signature_ok)


def verify_bytes(data: bytes, keyring: KeyRing, path: str = "record") -> SignedRecord:
    """Parse and verify one record's bytes, in the normative order."""
    record = SignedRecord.from_bytes(data, path)
    verify(record, keyring, path)
    return record
