"""Ed25519 keys and their printable forms.

An origin *is* its root public key; it is written ``ed25519:<base64url, no padding>`` wherever
it appears (records, configs, the CLI). Secret keys are the 32-byte seed, written
``ed25519-secret:<base64url>``: a one-line text form that ``node/`` stores in a 0600 file.
This module only converts between forms; it does no file I/O.

A key id must name a *strict* public key (SPEC §1.1): the canonical encoding of a point of the
prime-order subgroup, not of small order. Only such keys are ever produced from a seed; the
others (small-order points such as the identity, non-canonical encodings with y >= p, points
with a torsion component) are where Ed25519 implementations disagree about which signatures
verify, so they are refused at parse time, before any signature is checked. The test is
libsodium's ``crypto_core_ed25519_is_valid_point``, not curve arithmetic of our own.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.signing

from hashmesh.protocol.errors import KeyFormatError

PUBLIC_PREFIX = "ed25519:"
SECRET_PREFIX = "ed25519-secret:"
PUBLIC_ID_LENGTH = len(PUBLIC_PREFIX) + 43


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, the form used for keys and signatures on the wire."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, length: int, what: str, path: str) -> bytes:
    """Decode unpadded base64url that must yield exactly ``length`` bytes, canonically."""
    if not text.isascii() or "=" in text:
        raise KeyFormatError(f"{what} is not unpadded base64url", path)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"{what} is not unpadded base64url", path) from None
    if len(raw) != length:
        raise KeyFormatError(f"{what} must be {length} bytes, got {len(raw)}", path)
    if b64url_encode(raw) != text:
        raise KeyFormatError(f"{what} is not in canonical base64url form", path)
    return raw


def is_strict_point(raw: bytes) -> bool:
    """Whether ``raw`` is a public key hashmesh accepts: canonical (y < p, no "negative zero"),
    on the curve, in the prime-order subgroup and not of small order (libsodium's check)."""
    return len(raw) == 32 and bool(nacl.bindings.crypto_core_ed25519_is_valid_point(raw))


def check_strict_point(raw: bytes, path: str) -> None:
    """Raise ``KeyFormatError`` (``BAD_KEY``) unless ``raw`` is a strict public key."""
    if not is_strict_point(raw):
        raise KeyFormatError("not a valid Ed25519 public key (small-order, non-canonical or "
                             "not in the prime-order subgroup)", path)


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 verify key, identified on the wire by ``ed25519:<base64url>``."""

    raw: bytes

    @classmethod
    def from_id(cls, key_id: object, path: str = "key") -> PublicKey:
        if not isinstance(key_id, str) or not key_id.startswith(PUBLIC_PREFIX):
            raise KeyFormatError(f"expected '{PUBLIC_PREFIX}<base64url>', got {key_id!r:.80}", path)
        known = _KNOWN_KEYS.get(key_id)
        if known is not None:
            return known
        raw = b64url_decode(key_id[len(PUBLIC_PREFIX):], length=32, what="public key", path=path)
        check_strict_point(raw, path)
        key = cls(raw)
        if len(_KNOWN_KEYS) < _KNOWN_KEYS_MAX:
            _KNOWN_KEYS[key_id] = key
        return key

    @property
    def id(self) -> str:
        return PUBLIC_PREFIX + b64url_encode(self.raw)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature over ``message``.

        This is the one verification rule of SPEC §5.1, libsodium's
        ``crypto_sign_verify_detached``: S must be canonical (S < L), R and the key must not be
        of small order, the key must be canonical, and the cofactorless equation
        ``encode([S]B - [h]A) == R`` must hold byte for byte.
        """
        try:
            nacl.signing.VerifyKey(self.raw).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True

    def __str__(self) -> str:
        return self.id


# Every record names its origin and signing key; parsing the same few ids millions of times
# during a sync is pure waste, so well-formed ids are remembered (bounded, valid ids only).
_KNOWN_KEYS: dict[str, PublicKey] = {}
_KNOWN_KEYS_MAX = 10_000


class SigningKey:
    """An Ed25519 secret key. Never printed by ``repr``, so it cannot leak into logs."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise KeyFormatError(f"secret key seed must be 32 bytes, got {len(seed)}")
        self._key = nacl.signing.SigningKey(seed)
        self.public = PublicKey(bytes(self._key.verify_key))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_secret_text(cls, text: str, path: str = "secret key") -> SigningKey:
        text = text.strip()
        if not text.startswith(SECRET_PREFIX):
            raise KeyFormatError(f"expected '{SECRET_PREFIX}<base64url>'", path)
        seed = b64url_decode(text[len(SECRET_PREFIX):], length=32, what="secret key", path=path)
        return cls(seed)

    def secret_text(self) -> str:
        return SECRET_PREFIX + b64url_encode(bytes(self._key))

    @property
    def id(self) -> str:
        return self.public.id

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached Ed25519 signature over ``message``."""
        return bytes(self._key.sign(message).signature)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public.id})"
