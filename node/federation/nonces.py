"""Replay protection for signed peer requests: the nonces accepted while their signatures can
still verify (``node/federation/httpsig.py``), bounded per peer and in all."""

from __future__ import annotations

import hashlib
import heapq
import threading

from hashmesh.node.federation.signature_errors import (
    NonceCacheFullError,
    NonceQuotaError,
    ReplayError,
)


class NonceCache:
    """Remembers accepted ``(keyid, nonce)`` pairs until their signature can no longer verify.

    An entry lives until ``until`` (the verifier passes ``expires + skew``), then is purged,
    so memory is bounded by the request rate times the window. Two bounds make it absolute,
    and both *refuse* a new nonce rather than forget an old one, because forgetting an
    unexpired nonce would let whoever filled the cache replay the request it belonged to:

    * ``per_key``: the unexpired nonces of one keyid (one peer). A peer that sends more than
      ``per_key`` requests within a window is refused (``NONCE_QUOTA_EXCEEDED``) while every
      other peer goes on; without it one peer could fill the cache and lock the others out.
    * ``capacity``: all entries together (``NONCE_CACHE_FULL``), a backstop for very many
      peers; the default leaves room for 50 peers at their full quota.

    Only requests with a valid signature from a configured peer are recorded, so only a peer
    can use its quota, and a refusal ends by itself within one window. Entries are a 16-byte
    hash of the pair, so their size does not depend on what a peer sends (about 200 bytes
    each in CPython, with the per-key count).
    """

    def __init__(self, capacity: int = 1_000_000, per_key: int = 20_000) -> None:
        if capacity < 1 or per_key < 1:
            raise ValueError("capacity and per_key must be at least 1")
        self.capacity = capacity
        self.per_key = per_key
        self._until: dict[bytes, int] = {}
        self._counts: dict[str, int] = {}  # unexpired nonces per keyid
        self._shared: dict[str, str] = {}  # one str object per keyid, for the entries
        self._buckets: dict[int, list[tuple[bytes, str]]] = {}
        self._deadlines: list[int] = []  # heap of the keys of _buckets
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._until)

    def count(self, keyid: str) -> int:
        """How many unexpired nonces of ``keyid`` are remembered."""
        return self._counts.get(keyid, 0)

    @staticmethod
    def _entry(keyid: str, nonce: str) -> bytes:
        # keyid and nonce are sf-strings (printable ASCII), so "\n" separates them unambiguously.
        return hashlib.blake2b(f"{keyid}\n{nonce}".encode(), digest_size=16).digest()

    def purge(self, now: float) -> int:
        """Forget entries whose ``until`` is before ``now``; returns how many were dropped."""
        with self._lock:
            return self._purge(now)

    def _purge(self, now: float) -> int:
        dropped = 0
        while self._deadlines and self._deadlines[0] < now:
            for entry, keyid in self._buckets.pop(heapq.heappop(self._deadlines)):
                del self._until[entry]
                left = self._counts[keyid] - 1
                if left:
                    self._counts[keyid] = left
                else:
                    del self._counts[keyid]
                    del self._shared[keyid]
                dropped += 1
        return dropped

    def seen(self, keyid: str, nonce: str) -> bool:
        """Whether the pair is remembered (a replay), without recording anything."""
        entry = self._entry(keyid, nonce)
        with self._lock:
            return entry in self._until

    def claim(self, keyid: str, nonce: str, *, until: int, now: float) -> None:
        """Record the pair, or raise ``ReplayError`` (seen), ``NonceQuotaError`` (this keyid
        is at its quota) or ``NonceCacheFullError`` (full)."""
        entry = self._entry(keyid, nonce)
        with self._lock:
            self._purge(now)
            if entry in self._until:
                raise ReplayError(f"nonce {nonce!r} of {keyid} was already used", "Signature-Input")
            held = self._counts.get(keyid, 0)
            if held >= self.per_key:
                raise NonceQuotaError(
                    f"{keyid} has {held} unexpired nonces remembered (its quota); retry after "
                    "its current signatures expire", "Signature-Input")
            if len(self._until) >= self.capacity:
                raise NonceCacheFullError(
                    f"{len(self._until)} unexpired nonces are remembered (the limit); "
                    "retry after the current signatures expire", "Signature-Input")
            # entries share one str per keyid, however many requests it signs
            keyid = self._shared.setdefault(keyid, keyid)
            self._counts[keyid] = held + 1
            self._until[entry] = until
            if until not in self._buckets:
                self._buckets[until] = []
                heapq.heappush(self._deadlines, until)
            self._buckets[until].append((entry, keyid))
