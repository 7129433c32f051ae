"""The node's match workers: start them, restart them if they die, stop them with the node.

``[match_workers]`` in ``node.toml`` asks for ``processes`` workers on a port of their own
(``node/api/match_worker.py``). The node starts them after its own listener is up and waits for
every one to report ready (index loaded, port bound); if one cannot start, the node stops
with that worker's reason in its log. A worker that dies later is started again after a
pause that doubles up to ``MAX_RESTART_SECONDS`` (and starts again from one second once a
worker has run for ``STABLE_SECONDS``); the others go on serving meanwhile.

Workers report their counters as JSON lines on stdout. ``WorkerMetrics`` adds them up and
exports them on the node's ``/metrics`` under ``hashmesh_match_workers_*`` names (e.g.
``hashmesh_match_workers_match_queries_total``), kept monotonic across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from hashmesh.node.config.node import NodeConfig
from hashmesh.node.runtime.metrics import NodeMetrics
from hashmesh.node.runtime.tasks import cancel_and_wait
from hashmesh.node.store.interface import store_identity

log = logging.getLogger("hashmesh.match_pool")

STARTUP_SECONDS = 300.0  # loading 10M hashes takes ~10 s; a first numba compile ~10 s more
STOP_SECONDS = 10.0
FIRST_RESTART_SECONDS = 1.0
MAX_RESTART_SECONDS = 30.0
STABLE_SECONDS = 300.0  # a worker that ran this long restarts after the first pause again
READ_LIMIT = 16 * 2**20  # longest stdout line accepted from a worker


class MatchPoolError(Exception):
    """A match worker could not start; the message says which and why."""


SampleKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class _Family:
    type: str
    documentation: str
    live: dict[int, dict[SampleKey, float]] = field(default_factory=dict)
    retired: dict[SampleKey, float] = field(default_factory=dict)


class WorkerMetrics:
    """A prometheus collector: the workers' counters, summed, under names of their own.

    Each worker reports running totals since it started. When a worker is replaced, its last
    totals are kept (``retire``), so the exported sums never go down.
    """

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def update(self, slot: int, families: list[list[Any]]) -> None:
        for name, kind, documentation, samples in families:
            family = self._families.setdefault(
                _exported(name), _Family(kind, f"{documentation} (match workers)"))
            family.live[slot] = {(_exported(sample), tuple(sorted(labels.items()))): value
                                 for sample, labels, value in samples}

    def retire(self, slot: int) -> None:
        for family in self._families.values():
            for key, value in family.live.pop(slot, {}).items():
                family.retired[key] = family.retired.get(key, 0.0) + value

    def collect(self) -> Iterator[Metric]:
        for name, family in self._families.items():
            totals = dict(family.retired)
            for samples in family.live.values():
                for key, value in samples.items():
                    totals[key] = totals.get(key, 0.0) + value
            metric = Metric(name, family.documentation, family.type)
            for (sample, labels), value in totals.items():  # the workers' order: le ascending
                metric.add_sample(sample, dict(labels), value)
            yield metric


async def _end(process: asyncio.subprocess.Process) -> None:
    """Close the worker's stdin (it exits on EOF) and wait; kill it if it is slow."""
    if process.returncode is not None:
        return
    if process.stdin is not None:
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), STOP_SECONDS)
    except TimeoutError:
        log.warning("match worker pid %d did not stop; killing it", process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _exported(name: str) -> str:
    return name.replace("hashmesh_", "hashmesh_match_workers_", 1)


class MatchPool:
    """The ``[match_workers]`` processes of one node."""

    def __init__(self, config: NodeConfig, origin: str, metrics: NodeMetrics,
                 origin_names: Callable[[], dict[str, str]] = dict) -> None:
        assert config.match_workers is not None
        self.config = config
        self.origin = origin
        self.origin_names = origin_names  # of the node's peers in force, read at each start
        self.count = config.match_workers.processes
        self.metrics = WorkerMetrics()
        metrics.registry.register(self.metrics)
        self._supervisors: list[asyncio.Task[None]] = []
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._ready: set[int] = set()
        self._restarts = 0
        self._stopping = False
        # the (device, inode) of the node's database file at start; None: a server database
        self._database: tuple[int, int] | None = (0, 0)

    async def start(self) -> None:
        """Start every worker and wait until all are serving; raise ``MatchPoolError`` (after
        stopping the others) if one cannot start."""
        self._check_port_free()
        self._database = store_identity(self.config)
        loop = asyncio.get_running_loop()
        ready = [loop.create_future() for _ in range(self.count)]
        self._supervisors = [asyncio.create_task(self._supervise(slot, ready[slot]))
                             for slot in range(self.count)]
        try:
            async with asyncio.timeout(STARTUP_SECONDS):
                for future in asyncio.as_completed(ready):
                    await future
        except (MatchPoolError, TimeoutError) as exc:
            await self.stop()
            if isinstance(exc, TimeoutError):
                raise MatchPoolError(f"match workers not ready after {STARTUP_SECONDS:.0f} s"
                                     ) from None
            raise
        listen = self.config.match_workers
        assert listen is not None
        log.info("%d match workers serving POST /v1/match on %s://%s:%d", self.count,
                 "https" if self.config.tls else "http", listen.host, listen.port)

    async def stop(self) -> None:
        """Close every worker's stdin (they exit on EOF), then wait; kill the slow ones."""
        self._stopping = True
        await asyncio.gather(*(_end(process) for process in list(self._processes.values())))
        for task in self._supervisors:
            await cancel_and_wait(task)

    def _check_port_free(self) -> None:
        """Refuse a port that something already listens on. Workers bind it with
        ``SO_REUSEPORT``, which another process of the same user could share silently (a
        second node with the same config would split our queries); a plain bind cannot."""
        listen = self.config.match_workers
        assert listen is not None
        try:
            with socket.create_server((listen.host, listen.port)):
                pass
        except OSError as exc:
            raise MatchPoolError(f"match_workers.port: cannot listen on {listen.host}:"
                                 f"{listen.port}: {exc.strerror or exc}") from None

    def status(self) -> dict[str, Any]:
        """For ``/v1/status``: how many workers serve now, of how many, and restarts so far."""
        listen = self.config.match_workers
        assert listen is not None
        return {"host": listen.host, "port": listen.port, "processes": self.count,
                "ready": len(self._ready), "restarts": self._restarts}

    async def _supervise(self, slot: int, ready: asyncio.Future[None]) -> None:
        pause = FIRST_RESTART_SECONDS
        while not self._stopping:
            started = time.monotonic()
            try:
                code = await self._run_once(slot, ready)
            except Exception as exc:  # a process we cannot start or read: logged, replaced
                log.error("match worker %d: %s: %s", slot, type(exc).__name__, exc)
                code = None
            if time.monotonic() - started > STABLE_SECONDS:
                pause = FIRST_RESTART_SECONDS  # it had been running fine: a new failure
            self.metrics.retire(slot)
            if self._stopping:
                return
            if not ready.done():
                ready.set_exception(MatchPoolError(
                    f"match worker {slot} exited with code {code} before it was ready "
                    "(its reason is logged above)"))
                return
            log.error("match worker %d exited with code %s; starting it again in %.0f s",
                      slot, code, pause)
            self._restarts += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_RESTART_SECONDS)

    async def _run_once(self, slot: int, ready: asyncio.Future[None]) -> int | None:
        """Run one worker process until it exits; returns its exit code. Whatever ends
        this (the worker's exit, a fault reading it, cancellation), the process is gone
        when it returns."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hashmesh.node.api.match_worker",
            str(self.config.path.absolute()),
            "--slot", str(slot),
            "--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=READ_LIMIT)
        self._processes[slot] = process
        assert process.stdin is not None and process.stdout is not None
        try:
            database = None if self._database is None else list(self._database)
            process.stdin.write(json.dumps({
                "origin": self.origin, "config": self.config.text,
                "database": database,
                "origin_names": self.origin_names()}).encode() + b"\n")
            await process.stdin.drain()
            if self._stopping:
                process.stdin.close()
            async for line in process.stdout:
                self._on_message(slot, line, ready)
            return await process.wait()
        finally:
            self._processes.pop(slot, None)
            self._ready.discard(slot)
            await asyncio.shield(_end(process))

    def _on_message(self, slot: int, line: bytes, ready: asyncio.Future[None]) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            log.warning("match worker %d wrote a line that is not a JSON object: %.200r",
                        slot, line)
            return
        if "metrics" in message:
            self.metrics.update(slot, message["metrics"])
        elif "ready" in message:
            info = message["ready"]
            log.info("match worker %d ready (pid %s, %s hashes)", slot, info.get("pid"),
                     info.get("hashes"))
            self._ready.add(slot)
            if not ready.done():
                ready.set_result(None)
