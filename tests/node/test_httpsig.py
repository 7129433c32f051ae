"""Signed peer requests (RFC 9421 profile + RFC 9530 digests): vectors, refusals, nonce cache.

Every refusal test starts from a request that verifies and changes one thing, so each test
fails if the check it names is removed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL as YarlURL

from hashmesh.node.federation.httpsig import (
    COVERED_COMPONENTS,
    RequestVerifier,
    SignedHeaders,
    VerifiedRequest,
    content_digest,
    normalise_authority,
    serialise_signature_params,
    sign_request,
    sign_request_parts,
    signature_base,
    url_parts,
    verify_aiohttp_request,
)
from hashmesh.node.federation.nonces import NonceCache
from hashmesh.node.federation.signature_errors import SignatureError
from hashmesh.protocol.keys import PublicKey, SigningKey, b64url_encode

T0 = 1_700_000_000
KEY = SigningKey(bytes(range(32)))
OTHER_KEY = SigningKey(bytes(range(1, 33)))
NONCE = "AAECAwQFBgcICQoLDA0ODw"  # base64url of bytes 0..15
URL = "http://node-b.example:8080/v1/log/ed25519:abc?after=5&limit=10"
BODY = b'{"origin":"ed25519:abc"}'


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Req:
    """A request as the server sees it; tests alter one part and verify again."""

    method: str = "POST"
    authority: str = "node-b.example:8080"
    path: str = "/v1/log/ed25519:abc"
    query: str = "after=5&limit=10"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = BODY

    def with_header(self, name: str, value: str | None) -> Req:
        headers = dict(self.headers)
        if value is None:
            del headers[name]
        else:
            headers[name] = value
        return replace(self, headers=headers)


def signed(*, key: SigningKey = KEY, now: float = T0, window: int = 30, url: str = URL,
           body: bytes = BODY, method: str = "POST") -> Req:
    authority, path, query = url_parts(url)
    headers = sign_request(method=method, url=url, body=body, key=key, now=now, window=window)
    return Req(method, authority, path, query, headers, body)


def hand_signed(*, signer: SigningKey, keyid: str, digest_field: str, body: bytes = BODY,
                params: dict[str, int | str] | None = None) -> Req:
    """A request signed outside ``sign_request``: to claim another keyid or a custom digest."""
    req = Req(body=body)
    all_params: dict[str, int | str] = params or {
        "created": T0, "expires": T0 + 30, "nonce": NONCE, "keyid": keyid, "alg": "ed25519"}
    sig_params = serialise_signature_params(COVERED_COMPONENTS, all_params)
    base = signature_base([("@method", req.method), ("@authority", req.authority),
                           ("@path", req.path), ("@query", "?" + req.query),
                           ("content-digest", digest_field)], sig_params)
    signature = base64.b64encode(signer.sign(base)).decode()
    return replace(req, headers={"Content-Digest": digest_field,
                                 "Signature-Input": f"hm={sig_params}",
                                 "Signature": f"hm=:{signature}:"})


def lookup_of(*keys: SigningKey) -> Callable[[str], PublicKey | None]:
    known = {key.id: key.public for key in keys}
    return known.get


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(clock: FakeClock) -> RequestVerifier:
    return RequestVerifier(lookup_of(KEY, OTHER_KEY), NonceCache(), clock=clock)


def verify(verifier: RequestVerifier, req: Req) -> VerifiedRequest:
    return verifier.verify(method=req.method, authority=req.authority, path=req.path,
                           query=req.query, headers=req.headers, body=req.body)


def refusal(verifier: RequestVerifier, req: Req) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        verify(verifier, req)
    return info.value


# ------------------------------------------------------------------------------------------
# Known answers


def test_content_digest_matches_the_rfc9530_examples() -> None:
    assert content_digest(b'{"hello": "world"}') == (
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
    assert content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


# RFC 9421 Appendix B.1.4 (test-key-ed25519) and B.2.6 (signing a request using ed25519).
RFC_SEED = base64.urlsafe_b64decode("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU=")
RFC_PUBLIC = base64.urlsafe_b64decode("JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs=")
RFC_B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)
RFC_B26_SIGNATURE = ("wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQ"
                     "v5lIp5WPpBKRCw==")


def test_rfc9421_test_key_seed_gives_the_published_public_key() -> None:
    assert SigningKey(RFC_SEED).public.raw == RFC_PUBLIC


def test_signature_base_reproduces_rfc9421_b26_and_its_published_signature() -> None:
    components = ["date", "@method", "@path", "@authority", "content-type", "content-length"]
    params = serialise_signature_params(components, {"created": 1618884473,
                                                     "keyid": "test-key-ed25519"})
    values = ["Tue, 20 Apr 2021 02:07:55 GMT", "POST", "/foo", "example.com",
              "application/json", "18"]
    base = signature_base(list(zip(components, values, strict=True)), params)
    assert base.decode() == RFC_B26_BASE
    assert base64.b64encode(SigningKey(RFC_SEED).sign(base)).decode() == RFC_B26_SIGNATURE
    assert PublicKey(RFC_PUBLIC).verify(base, base64.b64decode(RFC_B26_SIGNATURE))


def test_profile_headers_and_signature_base_are_exactly_the_documented_text() -> None:
    headers = sign_request_parts(method="post", authority="Node-B.example:8080",
                                 path="/v1/notify", query="origin=ed25519%3Aabc", body=BODY,
                                 key=KEY, now=T0 + 0.9, nonce=NONCE)
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(BODY).digest()).decode() + ":"
    params = ('("@method" "@authority" "@path" "@query" "content-digest");created=1700000000'
              f';expires=1700000030;nonce="{NONCE}";keyid="{KEY.id}";alg="ed25519"')
    expected_base = (
        '"@method": POST\n'
        '"@authority": node-b.example:8080\n'
        '"@path": /v1/notify\n'
        '"@query": ?origin=ed25519%3Aabc\n'
        f'"content-digest": {digest}\n'
        f'"@signature-params": {params}'
    ).encode()
    assert headers["Content-Digest"] == digest
    assert headers["Signature-Input"] == f"hm={params}"
    assert headers["Signature"].startswith("hm=:") and headers["Signature"].endswith(":")
    signature = base64.b64decode(headers["Signature"][4:-1])
    assert KEY.public.verify(expected_base, signature)
    # Known-key vector (Ed25519 is deterministic): pins the whole output for other implementations.
    assert headers["Signature"] == (
        "hm=:" + base64.b64encode(KEY.sign(expected_base)).decode() + ":")


def test_empty_path_and_query_are_signed_as_slash_and_question_mark() -> None:
    headers = sign_request_parts(method="GET", authority="h", path="", query="", body=b"",
                                 key=KEY, now=T0, nonce=NONCE)
    sig_params = headers["Signature-Input"][3:]
    base = signature_base([("@method", "GET"), ("@authority", "h"), ("@path", "/"),
                           ("@query", "?"), ("content-digest", content_digest(b""))], sig_params)
    assert KEY.public.verify(base, base64.b64decode(headers["Signature"][4:-1]))


def test_url_parts_match_what_aiohttp_puts_on_the_wire() -> None:
    assert url_parts("HTTP://Node.Example:80/a b?q=ä") == ("node.example", "/a%20b", "q=%C3%A4")
    assert url_parts("https://h.example:443") == ("h.example", "/", "")
    assert url_parts("https://h.example:8443/x?") == ("h.example:8443", "/x", "")
    assert url_parts("http://[::1]:9000/p") == ("[::1]:9000", "/p", "")
    with pytest.raises(ValueError, match="relative URL"):
        url_parts("/v1/heads")


@pytest.mark.parametrize(("authority", "scheme", "expected"), [
    ("Example.COM:443", "https", "example.com"),
    ("example.com:80", "http", "example.com"),
    ("example.com:443", "http", "example.com:443"),
    ("example.com:8080", "http", "example.com:8080"),
    ("[::1]:443", "https", "[::1]"),
])
def test_normalise_authority_drops_only_the_schemes_default_port(authority: str, scheme: str,
                                                                 expected: str) -> None:
    assert normalise_authority(authority, scheme) == expected


# ------------------------------------------------------------------------------------------
# Acceptance


def test_signed_request_verifies_and_names_its_signer(verifier: RequestVerifier) -> None:
    result = verify(verifier, signed())
    assert result.keyid == KEY.id
    assert (result.created, result.expires) == (T0, T0 + 30)
    assert len(base64.urlsafe_b64decode(result.nonce + "==")) == 16


def test_get_without_body_is_signed_over_the_empty_digest(verifier: RequestVerifier) -> None:
    req = signed(method="get", body=b"", url="http://node-b.example:8080/v1/heads")
    assert req.headers["Content-Digest"] == content_digest(b"")
    assert verify(verifier, replace(req, method="GET")).keyid == KEY.id


def test_header_names_are_case_insensitive(verifier: RequestVerifier) -> None:
    req = signed()
    lowered = replace(req, headers={k.lower(): v for k, v in req.headers.items()})
    assert verify(verifier, lowered).keyid == KEY.id


def test_each_signature_gets_a_fresh_nonce() -> None:
    assert signed().headers["Signature-Input"] != signed().headers["Signature-Input"]


def test_signer_refuses_a_window_above_the_maximum() -> None:
    with pytest.raises(ValueError, match="window"):
        signed(window=61)


# ------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("removed", [["Signature-Input"], ["Signature"],
                                     ["Signature-Input", "Signature"]])
def test_request_without_signature_headers_is_refused(verifier: RequestVerifier,
                                                      removed: list[str]) -> None:
    req = signed()
    for name in removed:
        req = req.with_header(name, None)
    error = refusal(verifier, req)
    assert error.code == "MISSING_SIGNATURE"
    assert error.field == removed[0]


GOOD_INPUT = signed().headers["Signature-Input"]
GOOD_PARAMS = GOOD_INPUT[GOOD_INPUT.index(")") + 1:]
COMPONENTS = '("@method" "@authority" "@path" "@query" "content-digest")'


@pytest.mark.parametrize(("signature_input", "message"), [
    ("hm=(", "expected"),
    ("hm=" + COMPONENTS + GOOD_PARAMS + ",", "a member after ','"),
    ("sig=" + COMPONENTS + GOOD_PARAMS, "no signature labelled 'hm'"),
    (GOOD_INPUT + ", other=" + COMPONENTS + GOOD_PARAMS, "exactly one signature"),
    ('hm=("@method" "@path" "@authority" "@query" "content-digest")' + GOOD_PARAMS,
     "covered components must be"),
    ('hm=("@method" "@authority" "@path" "@query")' + GOOD_PARAMS, "covered components"),
    ('hm=("@method" "@authority" "@path" "@query" "content-digest" "date")' + GOOD_PARAMS,
     "covered components"),
    ('hm=("@method" "@authority" "@path" "@query";req "content-digest")' + GOOD_PARAMS,
     "plain strings"),
    ('hm=(@method "@authority" "@path" "@query" "content-digest")' + GOOD_PARAMS,
     "expected an integer, string"),
    ('hm=(method "@authority" "@path" "@query" "content-digest")' + GOOD_PARAMS,
     "plain strings"),
    ("hm=:AAAA:" + GOOD_PARAMS, "inner list"),
    (GOOD_INPUT.replace(';alg="ed25519"', ""), "missing parameter 'alg'"),
    (GOOD_INPUT.replace(';alg="ed25519"', ';alg="rsa-pss-sha512"'), "alg must be 'ed25519'"),
    (GOOD_INPUT.replace(';alg="ed25519"', ";alg=ed25519"), "alg must be a quoted string"),
    (GOOD_INPUT + ';tag="x"', "unknown parameter 'tag'"),
    (GOOD_INPUT + ";alg=\"ed25519\"", "duplicate parameter"),
    (GOOD_INPUT.replace(f";created={T0}", ""), "missing parameter 'created'"),
    (GOOD_INPUT.replace(f";created={T0}", f';created="{T0}"'), "created must be"),
    (GOOD_INPUT.replace(f";created={T0}", f";created={T0}.5"), "decimals"),
    (GOOD_INPUT.replace(f";expires={T0 + 30}", ""), "missing parameter 'expires'"),
    (GOOD_INPUT.replace(f";expires={T0 + 30}", f";expires={T0}"), "must be after created"),
    (GOOD_INPUT.split(";nonce=")[0] + ';nonce="short"' + GOOD_INPUT[GOOD_INPUT.index(";keyid"):],
     "nonce must be"),
    (GOOD_INPUT.split(";keyid=")[0] + ';alg="ed25519"', "missing parameter 'keyid'"),
])
def test_malformed_signature_input_is_refused(verifier: RequestVerifier, signature_input: str,
                                              message: str) -> None:
    error = refusal(verifier, signed().with_header("Signature-Input", signature_input))
    assert error.code == "MALFORMED_SIGNATURE"
    assert error.field == "Signature-Input"
    assert message in str(error)


@pytest.mark.parametrize(("signature", "message"), [
    ("hm=AAAA", "expected a byte sequence"),
    ("hm=:AAAA:", "64 bytes, got 3"),
    ("hm=:" + "A" * 86 + ":", "canonical padded base64"),
    ("hm=:" + "A" * 85 + "B==:", "canonical padded base64"),
    ("other=:" + base64.b64encode(bytes(64)).decode() + ":", "no signature labelled 'hm'"),
    ("hm=:" + base64.b64encode(bytes(64)).decode() + ":;x=1", "expected a byte sequence"),
])
def test_malformed_signature_header_is_refused(verifier: RequestVerifier, signature: str,
                                               message: str) -> None:
    error = refusal(verifier, signed().with_header("Signature", signature))
    assert error.code == "MALFORMED_SIGNATURE"
    assert error.field == "Signature"
    assert message in str(error)


def test_repeated_signature_header_lines_are_refused_not_picked(verifier: RequestVerifier) -> None:
    req = signed()
    headers = CIMultiDict(req.headers)
    headers.add("Signature", signed().headers["Signature"])
    with pytest.raises(SignatureError) as info:
        verifier.verify(method=req.method, authority=req.authority, path=req.path,
                        query=req.query, headers=headers, body=req.body)
    assert info.value.code == "MALFORMED_SIGNATURE"
    assert "duplicate key" in str(info.value)


def test_component_value_outside_printable_ascii_is_refused(verifier: RequestVerifier) -> None:
    error = refusal(verifier, replace(signed(), path="/v1/log\n\"@method\": GET"))
    assert error.code == "MALFORMED_SIGNATURE"
    assert "not printable ASCII" in str(error)


def test_unknown_keyid_is_refused(clock: FakeClock) -> None:
    verifier = RequestVerifier(lookup_of(OTHER_KEY), clock=clock)
    error = refusal(verifier, signed())
    assert error.code == "UNKNOWN_KEY"
    assert KEY.id in str(error)


def test_expired_signature_is_refused_after_but_not_at_expires(verifier: RequestVerifier,
                                                               clock: FakeClock) -> None:
    clock.now = T0 + 30
    verify(verifier, signed())
    clock.now = T0 + 30.5
    error = refusal(verifier, signed(now=T0))
    assert error.code == "EXPIRED"
    assert "expired" in str(error)


def test_signature_created_beyond_the_clock_skew_is_refused(verifier: RequestVerifier) -> None:
    verify(verifier, signed(now=T0 + 30))
    error = refusal(verifier, signed(now=T0 + 31))
    assert error.code == "EXPIRED"
    assert "in the future" in str(error)


def test_signature_lifetime_above_max_window_is_refused(verifier: RequestVerifier) -> None:
    params: dict[str, int | str] = {"created": T0, "expires": T0 + 61, "nonce": NONCE,
                                    "keyid": KEY.id, "alg": "ed25519"}
    req = hand_signed(signer=KEY, keyid=KEY.id, digest_field=content_digest(BODY), params=params)
    error = refusal(verifier, req)
    assert error.code == "EXPIRED"
    assert "lifetime 61 s exceeds the 60 s maximum" in str(error)
    params["expires"] = T0 + 60
    req = hand_signed(signer=KEY, keyid=KEY.id, digest_field=content_digest(BODY), params=params)
    assert verify(verifier, req).expires == T0 + 60


def test_replayed_request_is_refused(verifier: RequestVerifier) -> None:
    req = signed()
    verify(verifier, req)
    error = refusal(verifier, req)
    assert error.code == "REPLAYED"


def test_same_nonce_from_two_peers_is_not_a_replay(verifier: RequestVerifier) -> None:
    digest = content_digest(BODY)
    verify(verifier, hand_signed(signer=KEY, keyid=KEY.id, digest_field=digest))
    verify(verifier, hand_signed(signer=OTHER_KEY, keyid=OTHER_KEY.id, digest_field=digest))


def test_signature_by_another_key_claiming_a_peers_keyid_is_refused(
        verifier: RequestVerifier) -> None:
    req = hand_signed(signer=OTHER_KEY, keyid=KEY.id, digest_field=content_digest(BODY))
    error = refusal(verifier, req)
    assert error.code == "BAD_SIGNATURE"
    assert verify(verifier, hand_signed(signer=KEY, keyid=KEY.id,
                                        digest_field=content_digest(BODY))).keyid == KEY.id


@pytest.mark.parametrize("change", [
    {"method": "PUT"},
    {"method": "post"},
    {"authority": "node-c.example:8080"},
    {"authority": "node-b.example:8081"},
    {"path": "/v1/log/ed25519:abd"},
    {"path": "/v1/log/ed25519%3Aabc"},
    {"query": "after=0&limit=10"},
    {"query": "limit=10&after=5"},
    {"query": ""},
])
def test_request_altered_after_signing_is_refused(verifier: RequestVerifier,
                                                  change: dict[str, Any]) -> None:
    error = refusal(verifier, replace(signed(), **change))
    assert error.code == "BAD_SIGNATURE"


def test_authority_case_does_not_matter(verifier: RequestVerifier) -> None:
    assert verify(verifier, replace(signed(), authority="NODE-B.example:8080")).keyid == KEY.id


def test_altered_body_is_refused_as_digest_mismatch(verifier: RequestVerifier) -> None:
    error = refusal(verifier, replace(signed(), body=BODY + b" "))
    assert error.code == "DIGEST_MISMATCH"
    assert "does not match" in str(error)


def test_altered_body_with_recomputed_digest_header_is_refused(verifier: RequestVerifier) -> None:
    req = replace(signed(), body=b"{}").with_header("Content-Digest", content_digest(b"{}"))
    assert refusal(verifier, req).code == "BAD_SIGNATURE"


def test_request_without_content_digest_is_refused(verifier: RequestVerifier) -> None:
    error = refusal(verifier, signed().with_header("Content-Digest", None))
    assert error.code == "DIGEST_MISMATCH"
    assert error.field == "Content-Digest"


@pytest.mark.parametrize(("digest_field", "message"), [
    ("sha-512=:" + base64.b64encode(hashlib.sha512(BODY).digest()).decode() + ":",
     "no sha-256 digest"),
    ("sha-256=:" + base64.b64encode(hashlib.sha256(BODY).digest()[:16]).decode() + ":",
     "32-byte"),
    ("sha-256=" + hashlib.sha256(BODY).hexdigest(), "not a structured-field dictionary"),
    ("sha-256=abc", "32-byte"),
])
def test_signed_content_digest_without_a_valid_sha256_is_refused(
        verifier: RequestVerifier, digest_field: str, message: str) -> None:
    error = refusal(verifier, hand_signed(signer=KEY, keyid=KEY.id, digest_field=digest_field))
    assert error.code == "DIGEST_MISMATCH"
    assert message in str(error)


def test_other_digest_algorithms_next_to_sha256_are_accepted(verifier: RequestVerifier) -> None:
    sha512 = base64.b64encode(hashlib.sha512(BODY).digest()).decode()
    digest_field = f"sha-512=:{sha512}:, {content_digest(BODY)}"
    assert verify(verifier, hand_signed(signer=KEY, keyid=KEY.id,
                                        digest_field=digest_field)).keyid == KEY.id


def test_request_for_another_nodes_authority_is_refused(clock: FakeClock) -> None:
    verifier = RequestVerifier(lookup_of(KEY), clock=clock, authorities=["Node-A.example:8080"])
    error = refusal(verifier, signed())
    assert error.code == "WRONG_AUTHORITY"
    assert error.status == 421
    assert verify(verifier, signed(url="http://node-a.example:8080/v1/heads")).keyid == KEY.id


# ------------------------------------------------------------------------------------------
# Nonce cache


def test_nonce_is_not_recorded_when_verification_fails(verifier: RequestVerifier) -> None:
    digest = content_digest(BODY)
    forged = hand_signed(signer=OTHER_KEY, keyid=KEY.id, digest_field=digest)
    assert refusal(verifier, forged).code == "BAD_SIGNATURE"
    genuine = hand_signed(signer=KEY, keyid=KEY.id, digest_field=digest)
    assert refusal(verifier, replace(genuine, body=b"x")).code == "DIGEST_MISMATCH"
    assert len(verifier.nonces) == 0
    assert verify(verifier, genuine).nonce == NONCE
    assert len(verifier.nonces) == 1


def test_nonce_cache_remembers_until_its_deadline_then_purges() -> None:
    cache = NonceCache()
    cache.claim(KEY.id, NONCE, until=T0 + 60, now=T0)
    with pytest.raises(SignatureError) as info:
        cache.claim(KEY.id, NONCE, until=T0 + 60, now=T0 + 60)
    assert info.value.code == "REPLAYED"
    assert cache.purge(T0 + 60) == 0
    assert cache.purge(T0 + 60.5) == 1
    assert len(cache) == 0
    cache.claim(KEY.id, NONCE, until=T0 + 120, now=T0 + 61)


def test_verifier_keeps_nonces_for_expires_plus_skew(verifier: RequestVerifier) -> None:
    verify(verifier, signed())
    assert verifier.nonces.purge(T0 + 30 + 30) == 0
    assert verifier.nonces.purge(T0 + 30 + 30 + 1) == 1


def test_full_nonce_cache_refuses_instead_of_forgetting() -> None:
    cache = NonceCache(capacity=2)
    cache.claim(KEY.id, "a" * 22, until=T0 + 10, now=T0)
    cache.claim(KEY.id, "b" * 22, until=T0 + 20, now=T0)
    with pytest.raises(SignatureError) as info:
        cache.claim(KEY.id, "c" * 22, until=T0 + 30, now=T0 + 5)
    assert info.value.code == "NONCE_CACHE_FULL"
    assert info.value.status == 503
    with pytest.raises(SignatureError) as info:
        cache.claim(KEY.id, "a" * 22, until=T0 + 30, now=T0 + 5)
    assert info.value.code == "REPLAYED"
    cache.claim(KEY.id, "c" * 22, until=T0 + 30, now=T0 + 11)  # "a" expired, room again
    assert len(cache) == 2


def test_verifier_with_full_nonce_cache_refuses_valid_requests(clock: FakeClock) -> None:
    verifier = RequestVerifier(lookup_of(KEY), NonceCache(capacity=1), clock=clock)
    verify(verifier, signed())
    assert refusal(verifier, signed()).code == "NONCE_CACHE_FULL"
    clock.now = T0 + 61
    assert verify(verifier, signed(now=T0 + 61)).keyid == KEY.id


def test_nonce_cache_entries_are_small() -> None:
    # The docstring promises ~150 bytes an entry; 200_000 entries must stay well under 100 MB.
    import tracemalloc

    cache = NonceCache()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):
            cache.claim(KEY.id, b64url_encode(i.to_bytes(16, "big")), until=T0 + i % 90,
                        now=T0)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert used / 20_000 < 250


# ------------------------------------------------------------------------------------------
# Real aiohttp client and server on loopback


async def test_real_aiohttp_client_and_server_agree_on_the_signature_base(
        aiohttp_client: Any) -> None:
    verifier = RequestVerifier(lookup_of(KEY))

    async def handler(request: web.Request) -> web.Response:
        try:
            result = await verify_aiohttp_request(verifier, request)
        except SignatureError as exc:
            return web.json_response({"code": exc.code, "message": str(exc)}, status=exc.status)
        return web.json_response({"keyid": result.keyid, "host": request.host,
                                  "raw": request.rel_url.raw_path_qs})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    client = await aiohttp_client(app)
    base = str(client.make_url("/")).rstrip("/")
    session = client.session

    url = base + "/v1/log/ed25519:abc def?after=5&limit=10&q=ä%41"
    body = b'{"records": ["\xc3\xa4"]}'
    headers = sign_request(method="post", url=url, body=body, key=KEY)
    async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
        answer = await resp.json()
        assert resp.status == 200, answer
    assert answer["keyid"] == KEY.id
    assert answer["raw"] == "/v1/log/ed25519:abc%20def?after=5&limit=10&q=%C3%A4A"

    # A pre-encoded yarl URL is sent as is (no re-encoding); signing the same object agrees.
    encoded = YarlURL(base + "/v1/log/x%2fy?a=%41", encoded=True)
    headers = sign_request(method="GET", url=encoded, body=b"", key=KEY)
    async with session.get(encoded, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["raw"] == "/v1/log/x%2fy?a=%41"

    get_url = base + "/v1/heads"
    headers = sign_request(method="GET", url=get_url, body=b"", key=KEY)
    async with session.get(get_url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()

    # The same signed headers replayed, or sent with another body, are refused by the server.
    async with session.get(get_url, headers=headers) as resp:
        assert (resp.status, (await resp.json())["code"]) == (401, "REPLAYED")
    headers = sign_request(method="POST", url=url, body=body, key=KEY)
    async with session.post(url, data=body + b" ", headers=headers) as resp:
        assert (resp.status, (await resp.json())["code"]) == (400, "DIGEST_MISMATCH")


# ------------------------------------------------------------------------------------------
# Headers first: what a server checks before it reads the body


def _headers_only(verifier: RequestVerifier, req: Req) -> SignedHeaders:
    return verifier.verify_headers(method=req.method, authority=req.authority, path=req.path,
                                   query=req.query, headers=req.headers)


@pytest.mark.parametrize(("alter", "code"), [
    (lambda req: req.with_header("Signature", None), "MISSING_SIGNATURE"),
    (lambda req: replace(req, path="/v1/notify"), "BAD_SIGNATURE"),
    (lambda req: req.with_header("Signature-Input", "hm=()"), "MALFORMED_SIGNATURE"),
], ids=["unsigned", "altered", "malformed"])
def test_headers_are_refused_before_any_body_is_seen(
        verifier: RequestVerifier, alter: Callable[[Req], Req], code: str) -> None:
    with pytest.raises(SignatureError) as info:
        _headers_only(verifier, alter(signed()))
    assert info.value.code == code


def test_replayed_headers_are_refused_before_the_body_is_read(verifier: RequestVerifier) -> None:
    req = signed()
    verify(verifier, req)
    with pytest.raises(SignatureError) as info:
        _headers_only(verifier, req)
    assert info.value.code == "REPLAYED"


def test_verified_headers_still_check_the_body_and_claim_the_nonce_once(
        verifier: RequestVerifier) -> None:
    req = signed()
    checked = _headers_only(verifier, req)
    assert len(verifier.nonces) == 0, "no nonce is claimed before the body is checked"
    with pytest.raises(SignatureError) as info:
        checked.accept(req.body + b"x")
    assert info.value.code == "DIGEST_MISMATCH"
    assert checked.accept(req.body).keyid == KEY.id
    with pytest.raises(SignatureError) as again:
        checked.accept(req.body)
    assert again.value.code == "REPLAYED"
