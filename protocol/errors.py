"""The one exception tree of the hashmesh protocol.

Every error says *where* the fault is (``path``, a dotted/indexed field location such as
``body.items[2].hashes[0].value``) and carries a stable string ``code`` that the node's
HTTP API returns unchanged, so that a peer or a platform can act on it without parsing prose.

    ProtocolError                       code
    ├── EncodingError                   BAD_ENCODING
    │   ├── NonCanonicalError           NON_CANONICAL
    │   └── OversizeError               OVERSIZE
    ├── SchemaError                     BAD_SCHEMA
    │   ├── UnknownFieldError           UNKNOWN_FIELD
    │   ├── UnknownTypeError            UNKNOWN_TYPE
    │   ├── UnknownHashTypeError        UNKNOWN_HASH_TYPE
    │   ├── HashValueError              BAD_HASH_VALUE
    │   └── KeyFormatError              BAD_KEY
    ├── VerificationError               VERIFICATION_FAILED
    │   ├── BadSignatureError           BAD_SIGNATURE
    │   ├── DigestMismatchError         BODY_DIGEST_MISMATCH
    │   ├── KeyNotAuthorisedError       KEY_NOT_AUTHORISED
    │   └── KeyRevokedError             KEY_REVOKED
    ├── ChainError                      BAD_CHAIN
    │   ├── GapError                    GAP
    │   ├── PrevMismatchError           WRONG_PREV
    │   └── EquivocationError           EQUIVOCATION   (in evidence.py, beside what it carries)
    └── EvidenceError                   BAD_EVIDENCE
"""

from __future__ import annotations

from typing import ClassVar


class ProtocolError(ValueError):
    """Base of every protocol error: a message located by ``path`` and a stable ``code``."""

    code: ClassVar[str] = "PROTOCOL_ERROR"

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)


class EncodingError(ProtocolError):
    """The bytes are not valid hashmesh JSON (bad UTF-8, float, duplicate key, huge integer)."""

    code = "BAD_ENCODING"


class NonCanonicalError(EncodingError):
    """The bytes parse, but do not equal their RFC 8785 re-encoding."""

    code = "NON_CANONICAL"


class OversizeError(EncodingError):
    """The input exceeds a protocol size limit."""

    code = "OVERSIZE"


class SchemaError(ProtocolError):
    """A field is missing, of the wrong type, or out of range."""

    code = "BAD_SCHEMA"


class UnknownFieldError(SchemaError):
    """A field that the schema does not define: rejected, never ignored."""

    code = "UNKNOWN_FIELD"


class UnknownTypeError(SchemaError):
    """A record ``type`` (or other enumerated value) that this version does not define."""

    code = "UNKNOWN_TYPE"


class UnknownHashTypeError(SchemaError):
    """A hash algorithm name that is not registered."""

    code = "UNKNOWN_HASH_TYPE"


class HashValueError(SchemaError):
    """A hash value that is not valid for its algorithm."""

    code = "BAD_HASH_VALUE"


class KeyFormatError(SchemaError):
    """A key id or secret that is not a well-formed Ed25519 key."""

    code = "BAD_KEY"


class VerificationError(ProtocolError):
    """The record is well formed but not authentic."""

    code = "VERIFICATION_FAILED"


class BadSignatureError(VerificationError):
    """The Ed25519 signature does not verify over the domain-separated message."""

    code = "BAD_SIGNATURE"


class DigestMismatchError(VerificationError):
    """The body does not hash to the ``digest`` that the signed head commits to."""

    code = "BODY_DIGEST_MISMATCH"


class KeyNotAuthorisedError(VerificationError):
    """The signing key was never authorised by the origin's root key before this seq."""

    code = "KEY_NOT_AUTHORISED"


class KeyRevokedError(VerificationError):
    """The signing key was revoked at or before this seq."""

    code = "KEY_REVOKED"


class ChainError(ProtocolError):
    """The record does not extend the known log of its origin."""

    code = "BAD_CHAIN"


class GapError(ChainError):
    """A seq is missing between the known head and this record."""

    code = "GAP"


class PrevMismatchError(ChainError):
    """``prev`` is not the id of the record at ``seq - 1``."""

    code = "WRONG_PREV"


class EvidenceError(ProtocolError):
    """An equivocation evidence object does not prove what it claims."""

    code = "BAD_EVIDENCE"
