"""One peer's link: when to pull it and hint it, how to back off, and what it last saw.

Each configured peer has one ``PeerLink`` task with its own queue of work (a push hint to
send, a pull to make) and its own backoff and jitter, so a failing or slow peer never delays
the healthy ones. A link runs a round when poked (a local write, a hint from the peer) and
every ``pull_interval_seconds`` regardless (anti-entropy repairs any missed hint).

A failed round backs off, doubling up to ``MAX_BACKOFF_SECONDS``. Only the peer itself can
cut a backoff short: its ``POST /v1/notify`` is proof that it is up again, and a node sends
one to every peer when it starts listening (``Federation.announce``), so a link that backed
off while its peer was down pulls as soon as the peer is back instead of sleeping out the
rest of a minute. Our own writes do not end a backoff (a bulk load would otherwise retry a
dead peer on every add); their hint waits for the next round. A peer that keeps hinting while
its rounds fail gets a round at most every ``HINT_RETRY_SECONDS``.

``PeerHealth`` is what the link knows of its peer (up or down, last attempt, last completed
pull, failures in a row, the end of its backoff, the last error), for ``/v1/status`` and the
status page.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hashmesh.node.config.peers import PeerConfig
from hashmesh.node.federation.interface import LocalNode
from hashmesh.node.runtime.tasks import being_cancelled, cancel_and_wait

log = logging.getLogger("hashmesh.sync")

MAX_BACKOFF_SECONDS = 60.0
FIRST_BACKOFF_SECONDS = 1.0  # the first delay, before jitter; it doubles per failure
HINT_RETRY_SECONDS = 0.5
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class PeerError:
    """The fault that ended a round: when, its kind (the exception's class) and message."""

    at: float
    kind: str
    message: str


@dataclass
class PeerHealth:
    """What a link knows of its peer; times are wall-clock seconds (``time.time()``)."""

    up: bool | None = None  # None: no round has ended yet
    failures: int = 0  # failed rounds in a row
    last_attempt: float | None = None  # when the last round started
    last_pull: float | None = None  # when the last round that completed started
    backoff_until: float | None = None  # set while the link waits after a failure
    last_error: PeerError | None = None  # kept after a recovery, for the operator

    def to_json(self, now: float) -> dict[str, Any]:
        """For ``/v1/status``: ``pull_lag_seconds`` is how old the newest completed pull
        is (what this node may be missing from that peer, in time)."""
        error = self.last_error
        return {
            "state": "not tried yet" if self.up is None else ("up" if self.up else "down"),
            "failures": self.failures,
            "last_attempt": self.last_attempt,
            "last_pull": self.last_pull,
            "pull_lag_seconds": None if self.last_pull is None
            else round(max(0.0, now - self.last_pull), 3),
            "backoff_seconds": None if self.backoff_until is None
            else round(max(0.0, self.backoff_until - now), 3),
            "last_error": None if error is None else {
                "at": error.at, "kind": error.kind, "message": error.message},
        }


class PeerLink:
    """One peer's outbound queue: hints to send and rounds to run, with its own backoff.

    ``run_round(peer)`` pulls from the peer; ``send_notify(peer)`` hints it. Both raise on
    any fault of the peer.
    """

    def __init__(self, node: LocalNode, peer: PeerConfig,
                 run_round: Callable[[PeerConfig], Awaitable[object]],
                 send_notify: Callable[[PeerConfig], Awaitable[object]]) -> None:
        self.node = node
        self.peer = peer
        self.run_round = run_round
        self.send_notify = send_notify
        self.wake = asyncio.Event()  # run a round now
        self.hinted = asyncio.Event()  # the peer itself hinted: it is up, end any backoff
        self.notify_pending = False
        self.health = PeerHealth()
        self.task: asyncio.Task[None] | None = None

    @property
    def failures(self) -> int:
        return self.health.failures

    @property
    def task_name(self) -> str:
        return f"peer-{self.peer.name}"

    def start(self, announce: bool = False) -> None:
        """Start the loop; it runs a round at once (``announce``: a hint to the peer first)."""
        self.task = self.node.tasks.start(self.task_name, self.run)
        self.poke(notify=announce)

    async def stop(self) -> None:
        """Stop the link and wait until its task has unwound (a commit in flight finishes
        and reaches the index first)."""
        self.node.tasks.release(self.task_name)
        await cancel_and_wait(self.task)

    def poke(self, notify: bool = False, from_peer: bool = False) -> None:
        """Run a round soon; ``notify``: hint the peer first; ``from_peer``: the peer hinted
        us, so it is up: a backoff ends now."""
        self.notify_pending = self.notify_pending or notify
        if from_peer:
            self.hinted.set()
        self.wake.set()

    async def run(self) -> None:
        interval = self.node.config.federation.pull_interval_seconds
        while True:
            await _wait_for(self.wake, interval * random.uniform(0.8, 1.2))
            self.wake.clear()
            self.hinted.clear()
            started = time.time()
            self.health.last_attempt = started
            try:
                if self.notify_pending:
                    self.notify_pending = False
                    await self.send_notify(self.peer)
                await self.run_round(self.peer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any peer fault: log, back off, try again
                if being_cancelled():  # the stop surfaced as a connection error
                    raise asyncio.CancelledError from exc
                await self._back_off(exc)
            else:
                self._completed(started)

    def _completed(self, started: float) -> None:
        health = self.health
        if health.failures:
            log.info("sync with peer %s recovered after %d failed round%s", self.peer.name,
                     health.failures, "s" if health.failures != 1 else "")
        health.up, health.failures, health.last_pull = True, 0, started
        self.node.metrics.peer_up.labels(self.peer.name).set(1)

    async def _back_off(self, exc: Exception) -> None:
        health = self.health
        health.failures += 1
        health.up = False
        delay = (min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (health.failures - 1))
                 * random.uniform(0.5, 1.0))
        failed = time.time()
        message = str(exc) or "(no detail)"
        health.last_error = PeerError(failed, type(exc).__name__, message[:MAX_ERROR_CHARS])
        health.backoff_until = failed + delay
        log.warning("sync with peer %s failed (%s: %s); retrying in %.1f s", self.peer.name,
                    type(exc).__name__, message, delay)
        self.node.metrics.peer_up.labels(self.peer.name).set(0)
        self.notify_pending = True  # it may have missed our hints meanwhile
        try:
            if await _wait_for(self.hinted, delay):
                await asyncio.sleep(max(0.0, failed + HINT_RETRY_SECONDS - time.time()))
                log.info("peer %s hinted: retrying now, %.1f s before its backoff ended",
                         self.peer.name, max(0.0, failed + delay - time.time()))
        finally:
            health.backoff_until = None
        self.wake.set()


async def _wait_for(event: asyncio.Event, timeout: float) -> bool:
    """Whether ``event`` was set within ``timeout`` seconds."""
    try:
        await asyncio.wait_for(event.wait(), timeout=timeout)
    except TimeoutError:
        return False
    return True
