"""Creating and verifying signed records, and the per-origin key ring.

Verification runs in a fixed order so that every implementation reports the same error for
the same bad input: schema, canonical form (both in ``SignedRecord.from_bytes``), key
validity at the record's seq, signature, then chain linkage when the previous record is
known (``protocol/log.py``).

Key validity is measured in sequence numbers, never in wall-clock time: the root key is
always valid; a signing key is valid in each of its *windows*: from just after the ``key``
record that authorised it up to (and including) the ``last_seq`` named by the ``key_revoke``
that withdrew it (``seq - 1`` of a v1 ``key_revoke``). A key granted, revoked and granted
again has two windows; the seqs between them stay invalid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from hashmesh.protocol import encoding
from hashmesh.protocol.errors import (
    BadSignatureError,
    KeyNotAuthorisedError,
    KeyRevokedError,
    SchemaError,
)
from hashmesh.protocol.keys import PublicKey, SigningKey, b64url_encode
from hashmesh.protocol.records import (
    MAX_RECORD_BYTES,
    VERSION,
    AddBody,
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
    """One validity window of a signing key, in the origin's seq numbers.

    The key may sign seqs ``authorised_at < seq <= last_seq``; while the window is open
    (``revoked_at`` is None) there is no upper bound. ``revoked_at`` is the seq of the
    ``key_revoke`` that closed it.
    """

    key: str
    authorised_at: int
    revoked_at: int | None = None
    last_seq: int | None = None

    @property
    def last_valid(self) -> int | None:
        """The highest seq the key may sign in this window (None while it is open)."""
        if self.revoked_at is None:
            return None
        return self.revoked_at - 1 if self.last_seq is None else self.last_seq

    def covers(self, seq: int) -> bool:
        last = self.last_valid
        return self.authorised_at < seq and (last is None or seq <= last)


@dataclass
class KeyRing:
    """The signing keys of one origin, built by applying its key records in seq order.

    ``windows`` keeps every grant of every key, oldest first, so that a key granted, revoked
    and granted again stays valid in its first window and invalid in the gap.
    """

    origin: str
    windows: dict[str, tuple[KeyGrant, ...]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, origin: str, records: Iterable[SignedRecord]) -> KeyRing:
        """The ring after applying ``records`` (the origin's key records, any order of seq is
        sorted here; stubs carry no body and are skipped)."""
        ring = cls(origin)
        for record in sorted(records, key=lambda r: r.head.seq):
            ring.apply(record)
        return ring

    @property
    def grants(self) -> dict[str, KeyGrant]:
        """The latest window of each key (the one a ``key_revoke`` would close)."""
        return {key: windows[-1] for key, windows in self.windows.items()}

    def check(self, key: str, seq: int, path: str = "head.key") -> None:
        """Raise unless ``key`` may sign this origin's record at ``seq``.

        ``KEY_NOT_AUTHORISED`` if no window of the key starts before ``seq``; ``KEY_REVOKED``
        if one did but every such window closed before ``seq``.
        """
        if key == self.origin:
            return
        windows = self.windows.get(key, ())
        if any(window.covers(seq) for window in windows):
            return
        started = [w for w in windows if w.authorised_at < seq]
        if not started:
            raise KeyNotAuthorisedError(
                f"key {key} is not authorised by origin {self.origin} before seq {seq}", path)
        last = started[-1]
        raise KeyRevokedError(
            f"key {key} was revoked at seq {last.revoked_at} (last legitimate seq "
            f"{last.last_valid}); cannot sign seq {seq}", path)

    def window_at(self, key: str, seq: int) -> KeyGrant | None:
        """The window of ``key`` that covers ``seq``, if any (``None`` for the root key)."""
        return next((w for w in self.windows.get(key, ()) if w.covers(seq)), None)

    def is_revoked(self, key: str) -> bool:
        """Whether the root key has withdrawn ``key`` and not authorised it again."""
        windows = self.windows.get(key)
        return windows is not None and windows[-1].revoked_at is not None

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
            windows = self.windows.get(body.signing_key, ())
            if not windows or windows[-1].revoked_at is not None:
                self.windows[body.signing_key] = (*windows, KeyGrant(body.signing_key, seq))
        elif isinstance(body, KeyRevokeBody):
            if body.signing_key == self.origin:
                raise SchemaError("the root key cannot be revoked", "body.signing_key")
            windows = self.windows.get(body.signing_key, ())
            if windows and windows[-1].revoked_at is None:
                last = seq - 1 if body.last_seq is None else body.last_seq
                closed = KeyGrant(windows[-1].key, windows[-1].authorised_at, revoked_at=seq,
                                  last_seq=last)
                self.windows[body.signing_key] = (*windows[:-1], closed)

    def active_keys(self) -> list[str]:
        """Signing keys that may sign the next record (the root key is always allowed)."""
        return [key for key, windows in self.windows.items() if windows[-1].revoked_at is None]


def sign_record(
    *,
    signer: SigningKey,
    origin: str,
    seq: int,
    prev: str | None,
    ts: int,
    body: Body,
    dist: Distribution | None = None,
    version: int = VERSION,
) -> SignedRecord:
    """Build, canonicalise and sign one record. The caller owns seq/prev bookkeeping.

    ``version`` exists for test vectors of earlier versions; nodes sign the current one.
    An ``add`` body goes through the validating template encoder (``protocol/encoding.py``)
    when it can; everything else, and any add it does not accept, takes the generic path.
    """
    if isinstance(body, AddBody) and version == VERSION:
        fast = _sign_add_fast(signer=signer, origin=origin, seq=seq, prev=prev, ts=ts,
                              body=body, dist=dist or Distribution())
        if fast is not None:
            return fast
    head = Head(
        type=body.TYPE, origin=origin, seq=seq, prev=prev, key=signer.id, ts=ts,
        dist=dist or Distribution(), digest=body_digest(body), v=version,
    )
    unsigned = SignedRecord.assemble(head, body, b"\x00" * 64)
    signature = signer.sign(unsigned.message)
    record = SignedRecord.assemble(head, body, signature)
    # Round-trip through the strict parser so that we never emit what we would refuse.
    return SignedRecord.from_bytes(record.raw)


def _sign_add_fast(*, signer: SigningKey, origin: str, seq: int, prev: str | None, ts: int,
                   body: AddBody, dist: Distribution) -> SignedRecord | None:
    """Sign an ``add`` from bytes built once: body, digest, head, signature, envelope.

    ``encoding`` validates every value it writes against the protocol's patterns, so the
    round trip through the strict parser that the generic path ends with (~6 µs a hash) is
    not needed: tests/protocol/test_encoding.py holds the result equal to that round trip.
    """
    body_bytes = encoding.add_body_bytes(body)
    if body_bytes is None:
        return None
    head = Head(type=body.TYPE, origin=origin, seq=seq, prev=prev, key=signer.id, ts=ts,
                dist=dist, digest=hashlib.sha256(body_bytes).hexdigest(), v=VERSION)
    head_bytes = encoding.head_bytes(head)
    if head_bytes is None:
        return None
    sig = signer.sign(signed_message(head_bytes, VERSION))
    raw = b'{"body":%s,"head":%s,"sig":"%s"}' % (body_bytes, head_bytes,
                                                  b64url_encode(sig).encode("ascii"))
    if len(raw) > MAX_RECORD_BYTES:
        return None  # the generic path refuses it with the located error
    return SignedRecord(head=head, body=body, sig=sig, raw=raw, head_bytes=head_bytes)


def signature_verifies(record: SignedRecord) -> bool:
    """Whether ``head.key`` signed this record's head (the Ed25519 check alone).

    Depends on nothing but the record, so a receiver may run it ahead of time and in parallel
    (PyNaCl releases the GIL) and pass the answer to ``verify(..., signature_ok=...)``.
    """
    return PublicKey.from_id(record.head.key).verify(record.message, record.sig)


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
