"""Signed node-to-node requests: a small, strict profile of RFC 9421 with RFC 9530 digests.

A peer must know *who* sends a request (``/v1/log`` reads may be restricted to peers,
``/v1/notify`` must not be spoofable) without a shared secret per pair of nodes, and a captured
request must not be usable twice (nonces) nor, when the verifier knows its own authority, at
another node. Every node already has an Ed25519 key that its peers pin, so peer requests carry
an HTTP Message Signature made with it (DESIGN.md, decision 10). We implement only the subset
below, with our own strict parser (``node.structured_fields``), because the general libraries
are built around other HTTP stacks; anything outside the subset is refused rather than
interpreted.

Profile (hashmesh v1)
---------------------
- Label ``hm``; exactly one signature per request.
- Covered components, in this order::

      ("@method" "@authority" "@path" "@query" "content-digest")

- Signature parameters, each exactly once and no others: ``created`` (integer seconds),
  ``expires`` (integer seconds, ``created + 30`` by default), ``nonce`` (a random value of at
  least 16 bytes, base64url without padding: 22 to 128 characters of ``A-Za-z0-9-_``),
  ``keyid`` (the signer's public key id, ``ed25519:<base64url>``), ``alg`` (``"ed25519"``).
  The signer writes them in that order; a verifier rebuilds ``@signature-params`` in the order
  received.
- Headers, e.g.::

      Content-Digest: sha-256=:<base64 of SHA-256(body)>:
      Signature-Input: hm=("@method" "@authority" "@path" "@query" "content-digest")
          ;created=1700000000;expires=1700000030;nonce="...";keyid="ed25519:...";alg="ed25519"
      Signature: hm=:<base64 of the 64-byte Ed25519 signature>:

  (``Signature-Input`` is one line on the wire.) ``Content-Digest`` is always sent, for a
  ``GET`` too (the digest of the empty body), so every signature binds the body.
- Signature base exactly as RFC 9421 §2.5: one line ``"<component>": <value>`` per covered
  component, then ``"@signature-params": <inner list and parameters>``, joined by ``\\n``,
  no trailing newline, encoded as ASCII. Component values:

  - ``@method``: the method as sent (RFC 9421 §2.2.1 forbids changing its case); hashmesh
    methods are uppercase and the signer uppercases, as aiohttp does on the wire.
  - ``@authority``: ``host[:port]`` in lowercase, the default port for the scheme omitted
    (what aiohttp sends as ``Host``).
  - ``@path``: the absolute path as sent, percent-encoding untouched; empty becomes ``/``.
  - ``@query``: ``?`` followed by the query as sent; no query gives ``?``.
  - ``content-digest``: the header value, trimmed; several header lines are joined by ``, ``.

- Verification refuses with these codes (cheap checks first; the body's digest is compared
  only after the signature verified, so an altered body reports DIGEST_MISMATCH and an altered
  body sent with a recomputed ``Content-Digest`` reports BAD_SIGNATURE):

  ====================  =========================================================  ======
  code                  when                                                       status
  ====================  =========================================================  ======
  MISSING_SIGNATURE     no ``Signature-Input`` or no ``Signature`` header          401
  MALFORMED_SIGNATURE   unparseable headers, other labels, wrong components or     400
                        order, missing/unknown/ill-typed parameters, alg not
                        ed25519, expires <= created, a component value that is not
                        printable ASCII
  EXPIRED               ``now > expires``; ``expires - created > max_window``      401
                        (60 s); ``created > now + skew`` (30 s)
  WRONG_AUTHORITY       ``@authority`` is not one of this node's own (only when    421
                        the verifier is given its authorities)
  UNKNOWN_KEY           ``keyid`` is not a configured peer                         401
  DIGEST_MISMATCH       ``Content-Digest`` missing, unparseable, without           400
                        ``sha-256``, or not the body's digest
  BAD_SIGNATURE         the Ed25519 signature does not verify                      401
  CREATED_BEFORE_START  ``created`` is before the verifier (its nonce memory)      401
                        started, when it is given ``not_before``: a nonce accepted
                        before a restart is forgotten, so such a request could be a
                        replay
  REPLAYED              the (keyid, nonce) pair was already accepted               401
  NONCE_QUOTA_EXCEEDED  this keyid already has ``per_key`` unexpired nonces        429
  NONCE_CACHE_FULL      too many unexpired nonces to remember another              503
  ====================  =========================================================  ======

  The nonce is recorded only after everything else passed, so forged or broken requests
  cannot fill the nonce cache or burn a genuine request's nonce.

  Everything but the digest needs only the headers (the signature covers ``Content-Digest``,
  not the body), so a server runs ``verify_headers`` before it reads the body, and refuses an
  unsigned, expired, unknown, badly signed or replayed request without reading it; the body
  is then read within the route's own limit and ``accept``-ed (digest, then nonce).

Exception tree (``signature_errors.py``; ``status`` is the HTTP status the API should answer
with; the nonce cache is ``nonces.py``)::

    SignatureError
    ├── SignatureMissingError      MISSING_SIGNATURE
    ├── SignatureMalformedError    MALFORMED_SIGNATURE
    ├── SignatureExpiredError      EXPIRED
    ├── WrongAuthorityError        WRONG_AUTHORITY
    ├── UnknownKeyError            UNKNOWN_KEY
    ├── ContentDigestError         DIGEST_MISMATCH
    ├── SignatureInvalidError      BAD_SIGNATURE
    ├── CreatedBeforeStartError    CREATED_BEFORE_START
    ├── ReplayError                REPLAYED
    ├── NonceQuotaError            NONCE_QUOTA_EXCEEDED
    └── NonceCacheFullError        NONCE_CACHE_FULL

The core below is pure (method, authority, path, query, headers, body in; headers or a
verdict out). ``url_parts`` and ``sign_request`` use ``yarl``, the URL type aiohttp sends, so
the signer signs exactly the request target and ``Host`` that aiohttp will put on the wire;
the aiohttp server adapters at the bottom import nothing from aiohttp at run time.

Client-side rules: sign the final absolute URL (do not pass ``params=`` to aiohttp, which
would change the query after signing), send the body as the exact bytes that were signed
(``data=body``, not ``json=``), and use ``allow_redirects=False`` so a signed request is not
replayed to another location.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yarl import URL

from hashmesh.node.federation.nonces import NonceCache
from hashmesh.node.federation.signature_errors import (
    ContentDigestError,
    CreatedBeforeStartError,
    ReplayError,
    SignatureExpiredError,
    SignatureInvalidError,
    SignatureMalformedError,
    SignatureMissingError,
    UnknownKeyError,
    WrongAuthorityError,
)
from hashmesh.node.federation.structured_fields import (
    BareItem,
    Item,
    Member,
    Params,
    parse_dictionary,
    serialise_bare_item,
    serialise_string,
)
from hashmesh.protocol.keys import PublicKey, SigningKey, b64url_encode

if TYPE_CHECKING:
    from aiohttp import web

LABEL = "hm"
ALG = "ed25519"
COVERED_COMPONENTS = ("@method", "@authority", "@path", "@query", "content-digest")
PARAMETERS = ("created", "expires", "nonce", "keyid", "alg")
DEFAULT_WINDOW = 30
MAX_WINDOW = 60
CLOCK_SKEW = 30
NONCE_BYTES = 16
NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{22,128}")
ED25519_SIGNATURE_BYTES = 64
DEFAULT_PORTS = {"http": 80, "https": 443}


# --------------------------------------------------------------------------------------------
# Signature parameters, serialised with the strict structured-field subset


def serialise_signature_params(components: Sequence[str],
                               params: Mapping[str, int | str]) -> str:
    """The ``@signature-params`` value, also the ``Signature-Input`` member after ``hm=``."""
    inner = " ".join(serialise_string(name) for name in components)
    rest = "".join(f";{key}={serialise_bare_item(value)}" for key, value in params.items())
    return f"({inner}){rest}"


# --------------------------------------------------------------------------------------------
# Digest and signature base


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value for ``body``: ``sha-256=:<base64>:``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def signature_base(values: Sequence[tuple[str, str]], signature_params: str) -> bytes:
    """RFC 9421 §2.5: ``"<name>": <value>`` lines, then the ``@signature-params`` line.

    Values must be printable ASCII: a newline would let one component forge another's line.
    """
    lines = []
    for name, value in [*values, ("@signature-params", signature_params)]:
        if not all(" " <= char <= "~" for char in value):
            raise ValueError(f"{name}: value {value!r:.80} is not printable ASCII")
        lines.append(f"{serialise_string(name)}: {value}")
    return "\n".join(lines).encode("ascii")


def normalise_authority(authority: str, scheme: str) -> str:
    """Lowercase ``host[:port]`` without the scheme's default port (RFC 9110 §4.2.3)."""
    authority = authority.lower()
    default = DEFAULT_PORTS.get(scheme.lower())
    if default is not None and authority.endswith(f":{default}"):
        host = authority[: -len(f":{default}")]
        if host and (not host.startswith("[") or host.endswith("]")):
            return host
    return authority


def _component_values(method: str, authority: str, path: str, query: str,
                      digest_field: str) -> list[tuple[str, str]]:
    return [("@method", method), ("@authority", authority.lower()),
            ("@path", path or "/"), ("@query", "?" + query), ("content-digest", digest_field)]


# --------------------------------------------------------------------------------------------
# Signing


def sign_request_parts(*, method: str, authority: str, path: str, query: str, body: bytes,
                       key: SigningKey, now: float | None = None,
                       window: int = DEFAULT_WINDOW, nonce: str | None = None) -> dict[str, str]:
    """Headers to add to a request: ``Content-Digest``, ``Signature-Input``, ``Signature``.

    ``path`` and ``query`` are as sent on the wire (percent-encoded; ``query`` without ``?``).
    ``nonce`` is for test vectors only; leave it out and a fresh random one is drawn.
    """
    if isinstance(window, bool) or not isinstance(window, int) or not 0 < window <= MAX_WINDOW:
        raise ValueError(f"window must be an integer of 1..{MAX_WINDOW} seconds, got {window!r}")
    if nonce is None:
        nonce = b64url_encode(secrets.token_bytes(NONCE_BYTES))
    elif not NONCE_PATTERN.fullmatch(nonce):
        raise ValueError("nonce must be 22..128 base64url characters")
    created = int(time.time() if now is None else now)
    params: dict[str, int | str] = {"created": created, "expires": created + window,
                                    "nonce": nonce, "keyid": key.id, "alg": ALG}
    signature_params = serialise_signature_params(COVERED_COMPONENTS, params)
    digest = content_digest(body)
    base = signature_base(_component_values(method.upper(), authority, path, query, digest),
                          signature_params)
    signature = base64.b64encode(key.sign(base)).decode("ascii")
    return {"Content-Digest": digest,
            "Signature-Input": f"{LABEL}={signature_params}",
            "Signature": f"{LABEL}=:{signature}:"}


def url_parts(url: str | URL) -> tuple[str, str, str]:
    """``(authority, path, query)`` exactly as aiohttp will send ``url``.

    aiohttp turns a string into ``yarl.URL(url)`` (which percent-encodes and normalises it),
    sends ``raw_path`` and ``raw_query_string`` as the request target and
    ``host_port_subcomponent`` (lowercase, default port omitted) as ``Host``.
    """
    url = URL(url) if isinstance(url, str) else url
    authority = url.host_port_subcomponent
    if not url.absolute or authority is None:
        raise ValueError(f"cannot sign a request to a relative URL: {str(url)!r:.200}")
    return authority, url.raw_path, url.raw_query_string


def sign_request(*, method: str, url: str | URL, body: bytes, key: SigningKey,
                 now: float | None = None, window: int = DEFAULT_WINDOW) -> dict[str, str]:
    """Sign a request to ``url`` (the same string or URL then given to aiohttp)."""
    authority, path, query = url_parts(url)
    return sign_request_parts(method=method, authority=authority, path=path, query=query,
                              body=body, key=key, now=now, window=window)


# --------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class VerifiedRequest:
    """Who signed an accepted request, and the signature's lifetime."""

    keyid: str
    created: int
    expires: int
    nonce: str


@dataclass(frozen=True)
class _Signature:
    params: dict[str, int | str]
    signature: bytes

    @property
    def created(self) -> int:
        return int(self.params["created"])

    @property
    def expires(self) -> int:
        return int(self.params["expires"])

    @property
    def nonce(self) -> str:
        return str(self.params["nonce"])

    @property
    def keyid(self) -> str:
        return str(self.params["keyid"])


_WANTED_FIELDS = ("signature-input", "signature", "content-digest")


def _collect_fields(headers: Mapping[str, str]) -> dict[str, str]:
    """Case-insensitive lookup; repeated header lines are joined by ``, `` (RFC 9110 §5.3).

    A repeated ``Signature`` or ``Signature-Input`` then fails strict parsing (duplicate
    label) instead of one line being silently chosen.
    """
    found: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _WANTED_FIELDS:
            found.setdefault(lowered, []).append(value.strip(" \t"))
    return {name: ", ".join(values) for name, values in found.items()}


def _malformed(message: str, field: str = "Signature-Input") -> SignatureMalformedError:
    return SignatureMalformedError(message, field)


def _parse_member(text: str, field: str) -> Member:
    try:
        members = parse_dictionary(text)
    except ValueError as exc:
        raise _malformed(f"not a structured-field dictionary: {exc}", field) from None
    if LABEL not in members:
        raise _malformed(f"no signature labelled {LABEL!r} (found {sorted(members)})", field)
    if len(members) != 1:
        raise _malformed(f"exactly one signature ({LABEL!r}) is allowed, found "
                         f"{sorted(members)}", field)
    return members[LABEL]


def _check_components(value: BareItem | list[Item]) -> None:
    if not isinstance(value, list):
        raise _malformed(f"{LABEL}: expected an inner list of covered components")
    names = []
    for name, params in value:
        if type(name) is not str or params:
            raise _malformed(f"{LABEL}: covered components must be plain strings, got {name!r}")
        names.append(name)
    if tuple(names) != COVERED_COMPONENTS:
        wanted = " ".join(f'"{n}"' for n in COVERED_COMPONENTS)
        got = " ".join(f'"{n}"' for n in names)
        raise _malformed(f"{LABEL}: covered components must be ({wanted}), got ({got})")


def _check_params(params: Params) -> dict[str, int | str]:
    for name in params:
        if name not in PARAMETERS:
            raise _malformed(f"{LABEL}: unknown parameter {name!r}")
    checked: dict[str, int | str] = {}
    for name, value in params.items():
        if name in ("created", "expires"):
            if type(value) is not int or value < 0:
                raise _malformed(f"{LABEL}: {name} must be a non-negative integer, got {value!r}")
        elif type(value) is not str:
            raise _malformed(f"{LABEL}: {name} must be a quoted string, got {value!r}")
        checked[name] = value
    for name in PARAMETERS:
        if name not in checked:
            raise _malformed(f"{LABEL}: missing parameter {name!r}")
    if checked["alg"] != ALG:
        raise _malformed(f"{LABEL}: alg must be {ALG!r}, got {checked['alg']!r}")
    if not NONCE_PATTERN.fullmatch(str(checked["nonce"])):
        raise _malformed(f"{LABEL}: nonce must be 22..128 base64url characters "
                         f"(16 or more random bytes)")
    if int(checked["expires"]) <= int(checked["created"]):
        raise _malformed(f"{LABEL}: expires ({checked['expires']}) must be after created "
                         f"({checked['created']})")
    return checked


def _parse_signature(signature_input: str, signature: str) -> _Signature:
    components, params = _parse_member(signature_input, "Signature-Input")
    _check_components(components)
    checked = _check_params(params)
    value, sig_params = _parse_member(signature, "Signature")
    if not isinstance(value, bytes) or sig_params:
        raise _malformed(f"{LABEL}: expected a byte sequence ':<base64>:'", "Signature")
    if len(value) != ED25519_SIGNATURE_BYTES:
        raise _malformed(f"{LABEL}: an Ed25519 signature is {ED25519_SIGNATURE_BYTES} bytes, "
                         f"got {len(value)}", "Signature")
    return _Signature(checked, value)


def check_content_digest(field_value: str, body: bytes) -> None:
    """Raise ``ContentDigestError`` unless the header holds the body's SHA-256.

    Other algorithms in the header are ignored (RFC 9530 §2), but are still covered by the
    signature because the whole header value is.
    """
    try:
        members = parse_dictionary(field_value)
    except ValueError as exc:
        raise ContentDigestError(f"not a structured-field dictionary: {exc}",
                                 "Content-Digest") from None
    if "sha-256" not in members:
        raise ContentDigestError(f"no sha-256 digest (found {sorted(members)})", "Content-Digest")
    digest = members["sha-256"][0]
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise ContentDigestError("sha-256 must be a 32-byte byte sequence ':<base64>:'",
                                 "Content-Digest")
    if not hmac.compare_digest(digest, hashlib.sha256(body).digest()):
        raise ContentDigestError(f"sha-256 digest does not match the {len(body)}-byte body",
                                 "Content-Digest")


class RequestVerifier:
    """Checks signed peer requests against a key lookup, a clock and a nonce cache.

    ``lookup(keyid)`` returns the peer's key, or ``None`` when ``keyid`` is not a configured
    peer; this is the authorisation step. ``authorities``, when given, are this node's own
    ``host[:port]`` values: without it a request signed for another node that trusts the same
    peer could be replayed here (the ``Host`` header travels with it), so production
    verifiers should set it from the node's public URL.
    """

    def __init__(self, lookup: Callable[[str], PublicKey | None],
                 nonces: NonceCache | None = None, *, max_window: int = MAX_WINDOW,
                 skew: int = CLOCK_SKEW, clock: Callable[[], float] = time.time,
                 authorities: Collection[str] | None = None,
                 not_before: float | None = None) -> None:
        """``not_before``: when this verifier's nonce memory began (the node passes its start
        time). A request created earlier may carry a nonce that a previous process accepted
        and this one never saw, so it is refused (``CREATED_BEFORE_START``) instead."""
        if max_window < 1 or skew < 0:
            raise ValueError("max_window must be positive and skew non-negative")
        self.lookup = lookup
        self.nonces = NonceCache() if nonces is None else nonces
        self.max_window = max_window
        self.skew = skew
        self.clock = clock
        self.authorities = (None if authorities is None
                            else frozenset(a.lower() for a in authorities))
        self.not_before = not_before

    def verify(self, *, method: str, authority: str, path: str, query: str,
               headers: Mapping[str, str], body: bytes) -> VerifiedRequest:
        """Accept the request and remember its nonce, or raise a ``SignatureError``.

        ``path`` and ``query`` as received (percent-encoded; ``query`` without ``?``),
        ``authority`` as ``host[:port]`` without the scheme's default port.
        """
        return self.verify_headers(method=method, authority=authority, path=path,
                                   query=query, headers=headers).accept(body)

    def verify_headers(self, *, method: str, authority: str, path: str, query: str,
                       headers: Mapping[str, str]) -> SignedHeaders:
        """Every check but the body's digest, done before the body is read: the signature
        covers ``Content-Digest``, not the body, so a request that is unsigned, expired,
        by an unknown key or badly signed is refused without reading a byte of its body.
        ``accept(body)`` on the result does the rest."""
        fields = _collect_fields(headers)
        for name in ("Signature-Input", "Signature"):
            if name.lower() not in fields:
                raise SignatureMissingError(f"missing; peer requests must carry an RFC 9421 "
                                            f"signature labelled {LABEL!r}", name)
        parsed = _parse_signature(fields["signature-input"], fields["signature"])
        now = self.clock()
        self._check_time(parsed, now)
        authority = authority.lower()
        if self.authorities is not None and authority not in self.authorities:
            raise WrongAuthorityError(f"request is for {authority!r}, this node is "
                                      f"{sorted(self.authorities)}", "@authority")
        key = self.lookup(parsed.keyid)
        if key is None:
            raise UnknownKeyError(f"keyid {parsed.keyid!r:.80} is not a configured peer",
                                  "Signature-Input")
        digest_field = fields.get("content-digest")
        if digest_field is None:
            raise ContentDigestError("missing; it is a covered component of every peer request",
                                     "Content-Digest")
        signature_params = serialise_signature_params(COVERED_COMPONENTS, parsed.params)
        try:
            base = signature_base(
                _component_values(method, authority, path, query, digest_field),
                signature_params)
        except ValueError as exc:
            raise _malformed(str(exc), "") from None
        if not key.verify(base, parsed.signature):
            raise SignatureInvalidError(f"{LABEL}: signature does not verify with "
                                        f"{parsed.keyid}", "Signature")
        if self.nonces.seen(parsed.keyid, parsed.nonce):  # claimed for good in ``accept``
            raise ReplayError(f"nonce {parsed.nonce!r} of {parsed.keyid} was already used",
                              "Signature-Input")
        return SignedHeaders(self, parsed, digest_field)

    def _check_time(self, parsed: _Signature, now: float) -> None:
        created, expires = parsed.created, parsed.expires
        if expires - created > self.max_window:
            raise SignatureExpiredError(f"{LABEL}: lifetime {expires - created} s exceeds the "
                                        f"{self.max_window} s maximum", "Signature-Input")
        if created > now + self.skew:
            raise SignatureExpiredError(f"{LABEL}: created {created} is {created - now:.0f} s in "
                                        f"the future (allowed skew {self.skew} s)",
                                        "Signature-Input")
        if now > expires:
            raise SignatureExpiredError(f"{LABEL}: expired {now - expires:.0f} s ago "
                                        f"(expires={expires})", "Signature-Input")
        # ``created`` is whole seconds: one created in the second we started may predate us
        if self.not_before is not None and created < self.not_before:
            raise CreatedBeforeStartError(
                f"{LABEL}: created {created} is before this node started "
                f"({self.not_before:.0f}); nonces from before a restart are not remembered, "
                "so sign the request again", "Signature-Input")


@dataclass(frozen=True)
class SignedHeaders:
    """A request whose signature verified; its body is still to be checked and its nonce
    to be claimed (``accept``)."""

    verifier: RequestVerifier
    parsed: _Signature
    digest_field: str

    @property
    def keyid(self) -> str:
        return self.parsed.keyid

    def accept(self, body: bytes) -> VerifiedRequest:
        """Check the body against ``Content-Digest``, then remember the nonce."""
        parsed, verifier = self.parsed, self.verifier
        check_content_digest(self.digest_field, body)
        verifier.nonces.claim(parsed.keyid, parsed.nonce, until=parsed.expires + verifier.skew,
                              now=verifier.clock())
        return VerifiedRequest(parsed.keyid, parsed.created, parsed.expires, parsed.nonce)


# --------------------------------------------------------------------------------------------
# aiohttp server adapters


def aiohttp_request_parts(request: web.Request) -> tuple[str, str, str, str]:
    """``(method, authority, path, query)`` of a received request, as the signer saw them."""
    authority = normalise_authority(request.host, request.scheme)
    return request.method, authority, request.rel_url.raw_path, request.rel_url.raw_query_string


async def verify_aiohttp_request(verifier: RequestVerifier,
                                 request: web.Request) -> VerifiedRequest:
    """Read the body (within the app's size limit) and verify the request's signature."""
    body = await request.read()
    method, authority, path, query = aiohttp_request_parts(request)
    return verifier.verify(method=method, authority=authority, path=path, query=query,
                           headers=request.headers, body=body)
