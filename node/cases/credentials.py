"""Case references, PINs, and what the node keeps of them: an HMAC and an argon2id hash.

A **reference** is 16 symbols of Crockford's base32 in four groups, ``7KQ2-M9XD-4HTR-B3ZP``:
80 random bits, read aloud and typed without ambiguity (no I, L, O or U; what is typed is
upper-cased, and O, I and L are read as 0, 1 and 1, as Crockford's decoding says). It names
the case; it is not the secret that opens it.

A **PIN** is 8 random digits (26.6 bits): easy to type on a phone. On its own it would be
weak, so it is guarded by the lockout of ``[cases]`` (a reference locks after
``pin_attempts`` wrong PINs, for doubling periods up to a day) and by the reference, which an
attacker must hold first. The PIN is stored only as an argon2id hash (argon2-cffi's RFC 9106
"low memory" profile: 64 MiB, 3 passes), so a copy of the database gives no PIN faster than
the hash allows.

The reference is stored only as an HMAC-SHA-256 under a **node secret**, 32 random bytes in
``<data_dir>/case-secret`` (mode 0600), created on first use. The database alone cannot
confirm a guessed reference, and the same reference opened at two nodes gives unrelated
rows. Client addresses, for the per-client limit, are kept only as HMACs too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hashmesh.node.cases.errors import CaseError

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_SYMBOLS = 16
REFERENCE_GROUP = 4
PIN_DIGITS = 8
SECRET_FILE = "case-secret"
SECRET_BYTES = 32
# Crockford's decoding of look-alikes, and separators a person may type or a page may add
_TYPED = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None, "\t": None})
MAX_TYPED = 64  # longer input is refused before any work


def new_reference() -> str:
    symbols = "".join(secrets.choice(CROCKFORD) for _ in range(REFERENCE_SYMBOLS))
    return "-".join(symbols[i:i + REFERENCE_GROUP]
                    for i in range(0, REFERENCE_SYMBOLS, REFERENCE_GROUP))


def new_pin() -> str:
    return f"{secrets.randbelow(10 ** PIN_DIGITS):0{PIN_DIGITS}d}"


def normalise_reference(typed: str) -> str | None:
    """The reference as it was issued (grouped), from what a person typed; None if it cannot
    be one. Lower case, spaces, missing hyphens and O/I/L for 0/1/1 are forgiven."""
    if len(typed) > MAX_TYPED:
        return None
    symbols = typed.upper().translate(_TYPED)
    if len(symbols) != REFERENCE_SYMBOLS or any(c not in CROCKFORD for c in symbols):
        return None
    return "-".join(symbols[i:i + REFERENCE_GROUP]
                    for i in range(0, REFERENCE_SYMBOLS, REFERENCE_GROUP))


def normalise_pin(typed: str) -> str | None:
    if len(typed) > MAX_TYPED:
        return None
    digits = typed.translate(_TYPED)
    return digits if len(digits) == PIN_DIGITS and digits.isascii() and digits.isdigit() \
        else None


class NodeSecret:
    """The node-local key of the HMACs (see the module docstring)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def load_or_create(cls, data_dir: Path) -> NodeSecret:
        """Read ``<data_dir>/case-secret``, creating it (0600, fsynced) if it is absent."""
        path = data_dir / SECRET_FILE
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            key = secrets.token_bytes(SECRET_BYTES)
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first: use that one
                key = path.read_bytes()
            else:
                try:
                    os.write(fd, key)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                _fsync_dir(data_dir)
        if len(key) != SECRET_BYTES:
            raise CaseError(f"{path}: the case secret must be {SECRET_BYTES} bytes, found "
                            f"{len(key)}; restore it from a backup (without it no case "
                            "reference of this node can be checked)")
        return cls(key)

    def mac(self, kind: str, value: str) -> str:
        """HMAC-SHA-256 of ``value``, labelled by ``kind`` so that a reference and a client
        address never share a tag."""
        message = f"hashmesh-case/{kind}\x00{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


class PinHasher:
    """argon2id hashes of PINs; ``verify`` of a missing hash costs as much as a real one, so
    that a wrong reference answers as slowly as a wrong PIN."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._decoy: str | None = None

    def hash(self, pin: str) -> str:
        return self._hasher.hash(pin)

    def verify(self, stored: str | None, pin: str) -> bool:
        if stored is None:
            if self._decoy is None:
                self._decoy = self._hasher.hash(new_pin())
            stored = self._decoy
            pin = "not a pin"  # never matches the decoy
        try:
            return self._hasher.verify(stored, pin)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
