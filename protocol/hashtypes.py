"""The hash algorithms a hashmesh record may carry: one class per algorithm, one registry.

A hash on the wire is a pair ``(type, value)``. ``type`` is a registered name; the registry
``HASH_TYPES`` maps each name to a stateless singleton that knows the algorithm's rules:

    name      class          exact  bits  default / max threshold   value on the wire
    pdq       PdqType        no     256   31 / 63                   64 hex characters
    phash     PhashType      no      64   10 / 16                   16 hex (as imagehash prints)
    dhash     DhashType      no      64   10 / 16                   16 hex
    ahash     AhashType      no      64    8 / 16                   16 hex
    whash     WhashType      no      64    8 / 16                   16 hex
    md5       Md5Type        yes      -    0 / 0                    32 hex
    sha256    Sha256Type     yes      -    0 / 0                    64 hex
    photodna  PhotoDnaType   yes      -    0 / 0                    base64 (padded), 1..1024 bytes

``get_hash_type(name, path)`` is the one way a wire string becomes a ``HashType``. An unknown
name is an error, never skipped: a node that silently dropped an algorithm it did not know would
store and forward a record it can never match, and the sender would not learn why.

``validate(value, path)`` returns the normalised value or raises ``HashValueError`` located at
``path``. Normalising only lowercases hex digits; nothing is stripped or padded, so a value with
stray whitespace is rejected rather than guessed at. ``distance(a, b)`` is the Hamming distance for
perceptual types and 0/1 (equal or not) for exact ones, so matchers can treat both alike with
``distance <= threshold``. ``to_bytes`` gives the packed bits (or digest bytes) for indexes.

Adding an algorithm means a new class here, an entry in ``HASH_TYPES``, a line in
``protocol/SPEC.md`` and test vectors. A registered name is part of the wire format and is never
renamed or reused. This module imports only the standard library and ``protocol.errors``.
"""

from __future__ import annotations

import base64
import binascii
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from hashmesh.protocol.errors import HashValueError, UnknownHashTypeError

_HEX = re.compile(r"[0-9a-fA-F]*")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class HashType(ABC):
    """The rules of one hash algorithm: class variables set per subclass, no instance state."""

    name: ClassVar[str]
    exact: ClassVar[bool]
    bits: ClassVar[int | None]
    default_threshold: ClassVar[int]
    max_threshold: ClassVar[int]
    _examples: ClassVar[tuple[str, ...]]

    @abstractmethod
    def validate(self, value: object, path: str = "value") -> str:
        """Return ``value`` in normalised form, or raise ``HashValueError`` located at ``path``."""

    @abstractmethod
    def to_bytes(self, normalised: str) -> bytes:
        """The value as bytes: packed bits (perceptual) or the raw digest (exact)."""

    @abstractmethod
    def distance(self, a: str, b: str) -> int:
        """Hamming distance (perceptual) or 0 when equal and 1 otherwise (exact)."""

    def examples(self) -> list[str]:
        """Valid, already normalised values; tests and docs use them."""
        return list(self._examples)

    def _invalid(self, detail: str, path: str) -> HashValueError:
        return HashValueError(f"invalid {self.name} hash ({detail})", path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class _HexHashType(HashType):
    """A value written as a fixed number of hex digits, normalised to lowercase."""

    hex_chars: ClassVar[int]

    def validate(self, value: object, path: str = "value") -> str:
        n = self.hex_chars
        if not isinstance(value, str):
            detail = f"expected a string of {n} hex characters, got {type(value).__name__}"
            raise self._invalid(detail, path)
        if len(value) != n:
            raise self._invalid(f"expected {n} hex characters, got {len(value)}", path)
        if _HEX.fullmatch(value) is None:
            index, char = next((i, c) for i, c in enumerate(value) if c not in _HEX_DIGITS)
            detail = f"expected {n} hex characters, found {char!r} at index {index}"
            raise self._invalid(detail, path)
        return value.lower()

    def to_bytes(self, normalised: str) -> bytes:
        return bytes.fromhex(self.validate(normalised))


class _PerceptualHashType(_HexHashType):
    """A locality-sensitive hash: similar images give hashes a small Hamming distance apart."""

    exact = False

    def distance(self, a: str, b: str) -> int:
        x = int.from_bytes(bytes.fromhex(self.validate(a, "a")), "big")
        y = int.from_bytes(bytes.fromhex(self.validate(b, "b")), "big")
        return (x ^ y).bit_count()


class _ExactHexHashType(_HexHashType):
    """A cryptographic digest of the file bytes: any change to the file changes it entirely."""

    exact = True
    bits = None
    default_threshold = 0
    max_threshold = 0

    def distance(self, a: str, b: str) -> int:
        return 0 if self.validate(a, "a") == self.validate(b, "b") else 1


class PdqType(_PerceptualHashType):
    """Meta's PDQ: 256 bits, the interchange standard for photo hash sharing (ThreatExchange, HMA).

    The default threshold 31 is python-threatexchange's ``PDQ_CONFIDENT_MATCH_THRESHOLD``, the
    value PDQ's authors recommend for automated action. Unrelated images sit near 128 bits apart
    (binomial, sd 8), so the cap of 63 -- eight standard deviations below -- still keeps random
    collisions negligible; above it, matches are noise. PDQ's quality score is a separate field of
    a hash in a record, not part of the value.

    Measured (``bench/quality_bench.py``: 20 real photographs, 28 variants each): re-encoded
    (JPEG q40-85, WebP), grayscale and contrast-changed copies moved at most 16 bits, a corner
    watermark 26; resized copies up to 60 and thumbnails up to 74 (textures and a scanned page;
    93% and 80% stayed within 31), brightness x1.3 up to 50. A caption bar, a horizontal flip, a
    rotation or a canvas moves PDQ 86-160 bits, as far as another photo, which is why an image
    query also hashes flips, rotations and the trimmed picture. Distinct photos came no closer
    than 84 (two cameras, one scene), any variant no closer than 78 to another photo's record.
    """

    name = "pdq"
    bits = 256
    hex_chars = 64
    default_threshold = 31
    max_threshold = 63
    _examples = (
        # python-threatexchange PdqSignal.get_examples(): pdq/data/bridge-mods, misc-images.
        "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
        "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22",
        "e64cc9d91c623882f8d1f1d9a398e78c9f199b3bd83924f2b7e11e0bf861b064",
        "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d",
    )


class _ImageHash64Type(_PerceptualHashType):
    """A 64-bit hash from the ``imagehash`` library, written as ``str(imagehash.<fn>(img))`` prints.

    Unrelated images sit near 32 bits apart (sd 4). The cap of 16 is a quarter of the bits, the
    same proportion as PDQ's 63 of 256; beyond it these short hashes match unrelated images.

    Distinct photographs do come within these types' thresholds (figures per type below, from
    ``bench/quality_bench.py``), so a node never takes one 64-bit hit alone for a match
    (``node/matching/verdicts.py``): it needs two independent types, each within about half its
    threshold.
    """

    bits = 64
    hex_chars = 16
    max_threshold = 16


class PhashType(_ImageHash64Type):
    """imagehash ``phash`` (DCT of a 32x32 greyscale thumbnail).

    Default 10, the value commonly used with imagehash. Measured on 20 real photographs: resized,
    thumbnailed and re-encoded copies moved at most 4 bits, brightness x0.7/x1.3 up to 10, a
    watermark 16, a caption bar 28. Two photos of one scene from two cameras (scikit-image's
    motorcycle_left/right) were only 4 apart, well within 10.
    """

    name = "phash"
    default_threshold = 10
    _examples = ("c2924c5532bddfc8", "bb8320376c0f3637", "bff1c1c0434e8cbc")  # skimage data


class DhashType(_ImageHash64Type):
    """imagehash ``dhash`` (signs of horizontal gradients in a 9x8 thumbnail).

    Default 10. Measured on 20 real photographs: resized, thumbnailed and re-encoded copies moved
    at most 5 bits, contrast changes 8, brightness 10, a caption bar 22. Distinct photos came as
    close as 9 (the two-camera pair), within the threshold.
    """

    name = "dhash"
    default_threshold = 10
    _examples = ("cd8dd91d897293a7", "f3e96933160b1b36", "509a3c7fbc756cec")  # skimage data


class AhashType(_ImageHash64Type):
    """imagehash ``average_hash`` (8x8 thumbnail pixels above their mean).

    Default 8, lower than phash/dhash: ahash separates images worst. Measured on 20 real
    photographs: re-encoded and resized copies moved at most 3 bits, but thumbnails 15, WebP 19,
    a watermark 19 and brightness 22 (low-contrast images are unstable under ahash whatever the
    threshold). Distinct photos came within 11, and photos padded onto a black canvas within 7
    of another photo's record -- a hit at the default threshold.
    """

    name = "ahash"
    default_threshold = 8
    _examples = ("7f7f7fc744f8d050", "3f3fbfbb818081c3", "ffcf8f07071f1f1f")  # skimage data


class WhashType(_ImageHash64Type):
    """imagehash ``whash`` (Haar wavelet low band).

    Default 8. Measured on 20 real photographs: re-encoded, resized and thumbnailed copies moved
    at most 2 bits, brightness, contrast and a watermark 4, a caption bar 30. Distinct photos came
    within 10, and photos padded onto a black canvas within 2 of another photo's record (a
    dark-topped rocket launch): whash tracks ahash (both threshold a low-pass thumbnail), so the
    two count as one witness.
    """

    name = "whash"
    default_threshold = 8
    _examples = ("7f775fc744f80040", "3f7f3fbb818080c1", "ffcf8f0107171606")  # skimage data


class Md5Type(_ExactHexHashType):
    """MD5 of the file bytes: exact lookup only, for lists that predate perceptual hashing."""

    name = "md5"
    hex_chars = 32
    _examples = (
        "d41d8cd98f00b204e9800998ecf8427e",  # md5(b"")
        "cab08b36195edb1a1231d2d09fa450e0",  # python-threatexchange example
    )


class Sha256Type(_ExactHexHashType):
    """SHA-256 of the file bytes: exact lookup only."""

    name = "sha256"
    hex_chars = 64
    _examples = (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # sha256(b"")
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",  # sha256(b"hello")
    )


class PhotoDnaType(HashType):
    """Microsoft PhotoDNA, carried as opaque bytes: exact match only.

    hashmesh cannot compute or compare PhotoDNA (the algorithm and its distance are licensed), but
    organisations that hold PhotoDNA lists can still share them. The value is standard base64 with
    padding in canonical form (unused bits zero), so one byte string has exactly one wire form and
    equality of strings is equality of hashes. 1 KiB is far above PhotoDNA's 144 bytes.
    """

    name = "photodna"
    exact = True
    bits = None
    default_threshold = 0
    max_threshold = 0
    max_bytes: ClassVar[int] = 1024
    _examples = (
        # Synthetic 144-byte values: real PhotoDNA hashes are not public.
        base64.b64encode(bytes(range(144))).decode("ascii"),
        base64.b64encode(bytes(range(255, 111, -1))).decode("ascii"),
    )

    def validate(self, value: object, path: str = "value") -> str:
        if not isinstance(value, str):
            raise self._invalid(f"expected a base64 string, got {type(value).__name__}", path)
        self._decode(value, path)
        return value

    def to_bytes(self, normalised: str) -> bytes:
        return self._decode(self.validate(normalised), "value")

    def distance(self, a: str, b: str) -> int:
        return 0 if self.validate(a, "a") == self.validate(b, "b") else 1

    def _decode(self, value: str, path: str) -> bytes:
        if not value:
            raise self._invalid("expected base64 of 1 to 1024 bytes, got an empty string", path)
        max_chars = 4 * -(-self.max_bytes // 3)
        if len(value) > max_chars:
            detail = f"expected at most {self.max_bytes} bytes, got {len(value)} base64 characters"
            raise self._invalid(detail, path)
        for index, char in enumerate(value):
            if char not in _BASE64_ALPHABET and char != "=":
                detail = f"expected standard base64 with padding, found {char!r} at index {index}"
                raise self._invalid(detail, path)
        body = value.rstrip("=")
        if "=" in body:
            detail = f"expected '=' only as padding at the end, found it at index {body.index('=')}"
            raise self._invalid(detail, path)
        if len(value) - len(body) > 2:
            detail = f"expected at most 2 padding characters, got {len(value) - len(body)}"
            raise self._invalid(detail, path)
        if len(value) % 4:
            detail = f"expected padded base64, got {len(value)} characters (not a multiple of 4)"
            raise self._invalid(detail, path)
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise self._invalid(f"not valid base64 ({exc})", path) from None
        if len(raw) > self.max_bytes:
            raise self._invalid(f"expected at most {self.max_bytes} bytes, got {len(raw)}", path)
        if base64.b64encode(raw).decode("ascii") != value:
            raise self._invalid("base64 not in canonical form (unused bits must be zero)", path)
        return raw


HASH_TYPES: Mapping[str, HashType] = MappingProxyType(
    {
        t.name: t
        for t in (
            PdqType(),
            Md5Type(),
            Sha256Type(),
            PhashType(),
            DhashType(),
            AhashType(),
            WhashType(),
            PhotoDnaType(),
        )
    }
)


def get_hash_type(name: object, path: str = "type") -> HashType:
    """The registered type called ``name``; ``UnknownHashTypeError`` at ``path`` otherwise."""
    if isinstance(name, str):
        found = HASH_TYPES.get(name)
        if found is not None:
            return found
        shown = f"{name!r:.40}"
    else:
        shown = f"of type {type(name).__name__}"
    known = ", ".join(sorted(HASH_TYPES))
    raise UnknownHashTypeError(f"unknown hash type {shown} (known: {known})", path)
