"""Key ids and secret text: one printable form per key, nothing else accepted."""

from __future__ import annotations

import pytest

from hashmesh.protocol.errors import KeyFormatError
from hashmesh.protocol.keys import PublicKey, SigningKey, b64url_encode
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
