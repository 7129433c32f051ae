"""Why a signed peer request is refused (``node/federation/httpsig.py``): each error has a
stable ``code`` for the JSON error body, the HTTP status to answer with, and the header at
fault, so a peer's operator reads what to fix."""

from __future__ import annotations

from typing import ClassVar


class SignatureError(Exception):
    """A peer request whose signature is refused: a stable ``code``, the header at fault."""

    code: ClassVar[str] = "SIGNATURE_ERROR"
    status: ClassVar[int] = 401

    def __init__(self, message: str, field: str = "") -> None:
        self.reason = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class SignatureMissingError(SignatureError):
    code = "MISSING_SIGNATURE"


class SignatureMalformedError(SignatureError):
    code = "MALFORMED_SIGNATURE"
    status = 400


class SignatureExpiredError(SignatureError):
    code = "EXPIRED"


class WrongAuthorityError(SignatureError):
    """The request was signed for (and sent with ``Host``) another node."""

    code = "WRONG_AUTHORITY"
    status = 421


class UnknownKeyError(SignatureError):
    code = "UNKNOWN_KEY"


class ContentDigestError(SignatureError):
    code = "DIGEST_MISMATCH"
    status = 400


class SignatureInvalidError(SignatureError):
    code = "BAD_SIGNATURE"


class CreatedBeforeStartError(SignatureError):
    """Signed before this verifier started: its nonce may have been accepted and forgotten."""

    code = "CREATED_BEFORE_START"


class ReplayError(SignatureError):
    code = "REPLAYED"


class NonceQuotaError(SignatureError):
    """One peer has as many unexpired nonces as it may; the others are unaffected."""

    code = "NONCE_QUOTA_EXCEEDED"
    status = 429


class NonceCacheFullError(SignatureError):
    """Refused, not forgotten: see ``NonceCache``. Retrying later succeeds."""

    code = "NONCE_CACHE_FULL"
    status = 503
