"""Key ids and secret text: one printable form per key, nothing else accepted."""

from __future__ import annotations

import hashlib

import nacl.bindings
import pytest

from hashmesh.protocol.errors import KeyFormatError
from hashmesh.protocol.keys import PublicKey, SigningKey, b64url_encode, is_strict_point
from tests.protocol.builders import ROOT


def test_known_seed_gives_the_known_key_id() -> None:
    # Ed25519 public key of seed 00 01 .. 1f (the root key of protocol/vectors).
    assert ROOT.id == "ed25519:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"


def test_key_id_and_secret_text_round_trip() -> None:
    key = SigningKey.generate()
    assert PublicKey.from_id(key.id).id == key.id
    assert SigningKey.from_secret_text(key.secret_text() + "\n").id == key.id


def test_signature_verifies_only_under_its_key_and_message() -> None:
    sig = ROOT.sign(b"message")
    assert ROOT.public.verify(b"message", sig)
    assert not ROOT.public.verify(b"messagf", sig)
    assert not SigningKey.generate().public.verify(b"message", sig)
    assert not ROOT.public.verify(b"message", sig[:63])


@pytest.mark.parametrize(("key_id", "fragment"), [
    ("ed25519:" + b64url_encode(bytes(32)) + "=", "not unpadded base64url"),
    ("ed25519:" + b64url_encode(bytes(31)), "must be 32 bytes, got 31"),
    ("ed25519:" + b64url_encode(bytes(32))[:-1] + "B", "not in canonical base64url form"),
    ("ed25519:" + b64url_encode(bytes(32)).replace("A", "+", 1), "not in canonical base64url"),
    ("Ed25519:" + b64url_encode(bytes(32)), "expected 'ed25519:<base64url>'"),
    (None, "expected 'ed25519:<base64url>'"),
])
def test_key_id_rejects_every_other_form(key_id: object, fragment: str) -> None:
    with pytest.raises(KeyFormatError, match=fragment) as info:
        PublicKey.from_id(key_id, "peers[1].origin")
    assert info.value.path == "peers[1].origin"


def test_secret_text_rejects_a_public_key_id() -> None:
    with pytest.raises(KeyFormatError, match="expected 'ed25519-secret:<base64url>'"):
        SigningKey.from_secret_text(ROOT.id)


def test_signing_key_repr_does_not_contain_the_secret() -> None:
    secret = ROOT.secret_text().partition(":")[2]
    assert secret not in repr(ROOT)
    assert ROOT.id in repr(ROOT)


# -- strict public keys (SPEC §1.1) and the pinned verification rule (SPEC §5.1) -------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
IDENTITY = (1).to_bytes(32, "little")
ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
ORDER_2 = (P - 1).to_bytes(32, "little")  # y = -1: the point (0, -1), of order 2


def key_id(raw: bytes) -> str:
    return "ed25519:" + b64url_encode(raw)


@pytest.mark.parametrize("raw", [
    IDENTITY, ORDER_2, ORDER_8, bytes(32),
    (P + 1).to_bytes(32, "little"),            # the identity, y written as p + 1
    IDENTITY[:31] + b"\x80",                   # the identity with the sign bit set: x = -0
    nacl.bindings.crypto_core_ed25519_add(ROOT.public.raw, ORDER_8),  # torsion component
], ids=["identity", "order_2", "order_8", "zero", "y_above_p", "negative_zero", "mixed_order"])
def test_key_id_of_a_small_order_or_non_canonical_point_is_refused(raw: bytes) -> None:
    assert not is_strict_point(raw)
    with pytest.raises(KeyFormatError, match="not a valid Ed25519 public key") as info:
        PublicKey.from_id(key_id(raw), "record.head.key")
    assert (info.value.code, info.value.path) == ("BAD_KEY", "record.head.key")
    with pytest.raises(KeyFormatError):  # and a refused id is never remembered as valid
        PublicKey.from_id(key_id(raw))


def test_keys_made_from_seeds_are_strict() -> None:
    for _ in range(50):
        assert is_strict_point(SigningKey.generate().public.raw)


def _secret_scalar(seed: bytes) -> int:
    digest = bytearray(hashlib.sha512(seed).digest()[:32])
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    return int.from_bytes(digest, "little")


def test_signature_with_r_identity_is_refused_though_its_equation_holds() -> None:
    """S = h*a makes [S]B - [h]A the identity, so R = identity satisfies the cofactorless
    equation (OpenSSL accepts it); the pinned rule refuses R of small order."""
    seed, message = bytes(range(32)), b"hashmesh/record/v2\n{}"
    h = int.from_bytes(hashlib.sha512(IDENTITY + ROOT.public.raw + message).digest(), "little")
    forged = IDENTITY + (h * _secret_scalar(seed) % L).to_bytes(32, "little")
    assert not ROOT.public.verify(message, forged)


def test_signature_with_s_not_below_l_is_refused() -> None:
    sig = ROOT.sign(b"message")
    s_value = int.from_bytes(sig[32:], "little") + L
    assert s_value < 2**256
    assert not ROOT.public.verify(b"message", sig[:32] + s_value.to_bytes(32, "little"))
