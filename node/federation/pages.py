"""Verifying what a peer sends before anything is stored: a page of one origin's log, record
by record against our head (SPEC §17.4, the verified prefix), and the heads it lists. Pure
computation over bytes, run off the event loop by ``sync.py``."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from hashmesh.node.config.peers import PeerConfig
from hashmesh.node.federation.errors import RecordRefusedError
from hashmesh.node.federation.policy import may_keep_body
from hashmesh.protocol.errors import PrevMismatchError, ProtocolError
from hashmesh.protocol.log import LogHead, check_next
from hashmesh.protocol.records import SignedRecord, stub_refusal
from hashmesh.protocol.signing import KeyRing, signature_verifies, verify

# Records per task of the signature-checking pool: small enough that checking overlaps the
# parsing of the next chunk, large enough that task overhead is nothing next to Ed25519.
VERIFY_CHUNK = 64


@dataclass
class PageResult:
    """A verified page: what to store, the new head, and why it stopped early, if it did.

    ``conflict`` is the record whose ``prev`` is not our head: either the peer's chain
    diverges from ours at ``conflict_seq`` (equivocation) or that record is simply bad.
    ``fault`` is any other refusal; ``records`` then hold the verified prefix before it.
    """

    records: list[SignedRecord] = field(default_factory=list)
    head: LogHead | None = None
    conflict_seq: int | None = None
    conflict: PrevMismatchError | None = None
    fault: ProtocolError | RecordRefusedError | None = None


def verify_page(lines: Sequence[bytes], origin: str, ring: KeyRing, head: LogHead | None,
                peer: PeerConfig, pool: Executor | None = None) -> PageResult:
    """Verify a page of one origin's log against our head; runs in a worker thread.

    Stops at the first record that conflicts with our chain (its ``prev`` is not our head),
    reporting the conflicting seq so the caller can gather evidence, and at the first record
    with any other fault (at or below the head, out of order, of another origin, badly
    signed), reporting it as ``fault``. Either way the records before it are returned: each
    verified and links to the one before (SPEC §17.4, the verified prefix).

    Each record is parsed and its signature checked exactly once. The Ed25519 checks depend on
    nothing but the record, so with a ``pool`` they run there, chunk by chunk, while the next
    chunk is parsed (PyNaCl releases the GIL); the checks are then applied in record order,
    so the first fault reported is the same as checking one record at a time.
    """
    parsed: list[SignedRecord | ProtocolError] = []
    verdicts: list[Future[list[bool | None]]] = []
    for start in range(0, len(lines), VERIFY_CHUNK):
        chunk = [_parse(line, f"{peer.name}:log[{start + i}]")
                 for i, line in enumerate(lines[start:start + VERIFY_CHUNK])]
        parsed.extend(chunk)
        if pool is not None:
            verdicts.append(pool.submit(_signatures, chunk))
    checked = [ok for future in verdicts for ok in future.result()]
    result = PageResult(head=head)
    for index, record in enumerate(parsed):
        path = f"{peer.name}:log[{index}]"
        try:
            if isinstance(record, ProtocolError):
                raise record
            accepted = _accept(record, origin, ring, result.head, peer, path,
                               checked[index] if checked else None)
        except PrevMismatchError as exc:
            assert isinstance(record, SignedRecord)
            result.conflict_seq = record.head.seq - 1
            result.conflict = exc
            return result
        except (ProtocolError, RecordRefusedError) as exc:
            result.fault = exc
            return result
        ring.apply(accepted)
        result.records.append(accepted)
        result.head = LogHead.of(accepted)
    return result


def _accept(record: SignedRecord, origin: str, ring: KeyRing, head: LogHead | None,
            peer: PeerConfig, path: str, signature_ok: bool | None) -> SignedRecord:
    """The record as we store it (its stub if we may not keep its body), or a refusal."""
    if record.head.origin != origin:
        raise RecordRefusedError(f"{path}: record of origin {record.head.origin} in the log "
                                 f"of {origin}", "WRONG_ORIGIN")
    verify(record, ring, path, signature_ok=signature_ok)
    check_next(head, record, path)
    forbidden = stub_refusal(record.head) if record.body is None else None
    if forbidden is not None:
        raise RecordRefusedError(f"{path}: stub of {record.head.type} record seq "
                                 f"{record.head.seq} of {origin} refused: {forbidden}",
                                 "FORBIDDEN_STUB")
    if not may_keep_body(record, peer) and record.body is not None:
        return record.stub()
    return record


def parse_heads(payload: bytes, wanted: set[str] | None, peer_name: str
                ) -> list[SignedRecord]:
    """The heads in ``payload`` of the ``wanted`` origins (``None``: all), one per origin.

    A line is parsed only if it names a wanted origin: a valid head is canonical JSON, so it
    holds ``"origin":"<id>"`` byte for byte, and a byte search is far cheaper than a parse.
    Lines that name none are skipped unread unless they name no origin at all (junk), which
    is refused as before. A second head for one origin is refused: each head starts a pull
    of up to ``MAX_PAGES_PER_ROUND`` pages, so repeats would multiply one round's work.
    """
    needles = None if wanted is None else [f'"origin":"{origin}"'.encode() for origin in wanted]
    heads: dict[str, SignedRecord] = {}
    for index, line in enumerate(payload.splitlines()):
        if (needles is not None and b'"origin":"' in line
                and not any(needle in line for needle in needles)):
            continue
        path = f"{peer_name}:heads[{index}]"
        stub = SignedRecord.from_bytes(line, path)
        if wanted is not None and stub.head.origin not in wanted:
            continue
        if stub.head.origin in heads:
            raise RecordRefusedError(f"{path}: a second head for origin {stub.head.origin}",
                                     "DUPLICATE_HEAD")
        heads[stub.head.origin] = stub
    return list(heads.values())


def _parse(line: bytes, path: str) -> SignedRecord | ProtocolError:
    """The record, or its fault, kept to be reported in order with the other checks."""
    try:
        return SignedRecord.from_bytes(line, path)
    except ProtocolError as exc:
        return exc


def _signatures(chunk: list[SignedRecord | ProtocolError]) -> list[bool | None]:
    return [None if isinstance(record, ProtocolError) else signature_verifies(record)
            for record in chunk]
