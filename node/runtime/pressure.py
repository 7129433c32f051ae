"""Match requests in flight in this process, and the pacing of bulk reads that yield to them.

Why: a node process that serves matches itself (no ``[match_workers]``) also builds the pages
of ``GET /v1/changes`` and TAXII. A page is ~20–33 ms of Python on a store reader thread, and
while it runs the event loop waits for the GIL, so a full fetch used to cost matching a third
to a half of its throughput. The page builders now work in chunks and, between chunks, wait
on the event loop (holding no reader thread) while matches are in flight: a fetch slows
itself instead of matching. The wait is bounded per chunk and per page, so a fetch always
progresses, however steady the match load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# changes (or TAXII objects) a page builder reads and encodes at once: ~2–3 ms of Python
CHUNK = 100
# the longest a page builder waits between two chunks while matches are in flight
CHUNK_WAIT_SECONDS = 0.05
# the longest one page waits in all: a page of 1,000 changes is never more than this late
PAGE_WAIT_SECONDS = 0.5


class MatchPressure:
    """How many match requests this process is serving; used on the event loop only."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._quiet: asyncio.Event | None = None

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Around a match request: bulk readers yield while any is in flight."""
        self.in_flight += 1
        if self._quiet is not None:
            self._quiet.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0 and self._quiet is not None:
                self._quiet.set()

    async def quiet(self, timeout: float) -> None:
        """Return when no match is in flight, or after ``timeout`` seconds."""
        if self.in_flight == 0:
            return
        if self._quiet is None:
            self._quiet = asyncio.Event()
        try:
            await asyncio.wait_for(self._quiet.wait(), timeout)
        except TimeoutError:
            pass


class PagePacer:
    """One page's yields to matching: ``await pause()`` between two chunks of the page.

    ``pause`` returns at once when no match is in flight, and otherwise waits until none is,
    at most ``chunk_wait`` seconds, and at most ``page_wait`` seconds over the whole page.
    ``on_yield`` is called for each pause that waited (a metric)."""

    def __init__(self, pressure: MatchPressure, on_yield: Callable[[], None] | None = None, *,
                 chunk_wait: float = CHUNK_WAIT_SECONDS,
                 page_wait: float = PAGE_WAIT_SECONDS) -> None:
        self.pressure = pressure
        self.on_yield = on_yield
        self.chunk_wait = chunk_wait
        self.left = page_wait
        self.yields = 0

    async def pause(self) -> None:
        if self.pressure.in_flight == 0 or self.left <= 0:
            return
        started = time.monotonic()
        await self.pressure.quiet(min(self.chunk_wait, self.left))
        self.left -= time.monotonic() - started
        self.yields += 1
        if self.on_yield is not None:
            self.on_yield()
