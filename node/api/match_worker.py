"""One match worker: a process that answers ``POST /v1/match`` from the node's store.

The node starts its ``[match_workers]`` processes itself (``node/api/match_pool.py``) as
``python -m hashmesh.node.api.match_worker CONFIG --slot N``; nobody runs this by hand. The
first line on its stdin gives it the node's origin, the text of ``node.toml`` *as the node
loaded it*, and the identity (device, inode) of the database the node has open: a worker
started again after an operator edited the file, or moved the database, must answer as the
running node does, or not at all. Each worker:

* opens the node's database as a follower (schema checked, nothing created), loads its own
  index from it without re-verifying any signature, and binds the ``[match_workers]``
  address with ``SO_REUSEPORT``, so the kernel spreads connections over the workers;
* follows the entries the node commits, every ``FOLLOW_SECONDS`` and before each batch of
  lookups when the node committed more (``MatchWorker.catch_up``; entries are numbered in
  commit order, ``Store.entries_after``). Revocations and expiries reach it through the
  store: an answer is always checked against the store (``node/matching/answers.py``), and a
  candidate the store no longer holds in force is then dropped from this index;
* writes one JSON line to stdout when it is ready, then its counters every
  ``REPORT_SECONDS`` (the node exports them, ``node/api/match_pool.py``);
* exits when its stdin closes. The node holds the other end: if the node stops or dies, no
  worker goes on serving its port;
* runs its loops (follow, report, sweep, peers check) supervised (``node/runtime/tasks.py``):
  one that fails is logged, counted and started again;
* starts on the peers the node has in force, which it gets in the start message: a worker
  restarted while ``peers.toml`` does not validate must come up as the node runs, not exit.

Audit rows of matches are written by the worker, into the same ``audit`` table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from hashmesh.node.api.connections import GuardedRunner, connection_cap
from hashmesh.node.api.routes import (
    MATCHING_KEY,
    add_match_routes,
    auth_middleware,
    errors_middleware,
    request_id_middleware,
)
from hashmesh.node.api.server import tls_context
from hashmesh.node.config.node import NodeConfig, node_config_from_text
from hashmesh.node.config.peers import PeersConfig
from hashmesh.node.config.toml_reader import ConfigError
from hashmesh.node.matching.answers import SETTLE_SECONDS, Matching
from hashmesh.node.matching.matcher import Matcher
from hashmesh.node.runtime.metrics import NodeMetrics
from hashmesh.node.runtime.tasks import Supervisor, every
from hashmesh.node.runtime.web import ApiError
from hashmesh.node.store.interface import StoreError, open_async_store
from hashmesh.node.store.schema import SchemaVersionError
from hashmesh.node.store.sqlite import database_identity

log = logging.getLogger("hashmesh.match_worker")

FOLLOW_SECONDS = 0.1
FOLLOW_BATCH = 100_000
REPORT_SECONDS = 1.0
EXPIRY_SWEEP_SECONDS = 60
PEERS_CHECK_SECONDS = 5.0
# The node's counters that workers report (renamed by the node, ``node/api/match_pool.py``).
REPORTED_METRICS = ("hashmesh_http_requests", "hashmesh_match_queries", "hashmesh_match_hits",
                    "hashmesh_match_seconds", "hashmesh_background_task_failures")


class DatabaseMovedError(Exception):
    """The database file is no longer the one the node has open."""


class MatchWorker:
    """The state of one worker: a follower store, an index, and the peers' names."""

    def __init__(self, config: NodeConfig, origin: str,
                 database: tuple[int, int] | None = None,
                 origin_names: dict[str, str] | None = None) -> None:
        self.config = config
        self.origin = origin
        self.database = database
        self.metrics = NodeMetrics()
        self.store = open_async_store(config, follower=True)
        self.check_database()
        self._peers_stamp = _stamp(config.federation.peers_file)
        self._names = origin_names
        self.peers: PeersConfig | None = None
        try:
            self.peers = config.load_peers()
        except ConfigError as exc:
            if origin_names is None:
                raise
            log.warning("peers file does not validate; serving with the peers the node has "
                        "in force: %s", exc)
        self._stale: list[int] = []
        self.matching = Matching(config, self.store, self.metrics, self.origin_name,
                                 on_stale=self._stale.extend, catch_up=self.catch_up)
        self.followed = 0  # every entry up to this id is in the index (or not in force)
        self._following = asyncio.Lock()

    async def load(self) -> None:
        await asyncio.to_thread(Matcher.warm_up)
        self.followed = await self.store.read(lambda s: s.last_entry_id())
        await self.matching.reload_index(through=self.followed)

    def origin_name(self, origin: str) -> str | None:
        if origin == self.origin:
            return self.config.name
        if self.peers is not None:
            return self.peers.origin_name(origin)
        return None if self._names is None else self._names.get(origin)

    def check_database(self) -> None:
        """Raise ``DatabaseMovedError`` unless ``config.db_path`` is still the file the node
        has open (when the node said which)."""
        if self.database is None:
            return
        try:
            found = database_identity(self.config.db_path)
        except OSError:
            found = None
        if found != tuple(self.database):
            raise DatabaseMovedError(
                f"{self.config.db_path} is no longer the database the node has open (moved "
                "or replaced); restart the node")

    async def catch_up(self) -> None:
        """Follow at once if the node committed entries this index lacks: called before each
        batch of lookups, so that a query sent after an add was acknowledged matches it on
        every worker, not only after the next ``FOLLOW_SECONDS`` tick. The check is one
        indexed read, shared by every request of the batch."""
        last = await self.store.read(lambda s: s.last_entry_id())
        if last > self.followed:
            await self.follow(until=last)

    async def follow(self, until: int | None = None) -> int:
        """Index what the node committed since the last call (through entry id ``until``
        at least, when given: a catch-up need not chase a bulk load still being written),
        and drop the stale entries found by answers since then; returns the number of
        hashes added."""
        async with self._following:
            return await self._follow(until)

    async def _follow(self, until: int | None) -> int:
        self.check_database()
        added = 0
        while until is None or self.followed < until:
            last, batch = await self.store.read(
                lambda s: s.entries_after(self.followed, FOLLOW_BATCH))
            stale, self._stale[:] = list(self._stale), []
            await asyncio.to_thread(self._apply, batch, stale)
            added += sum(len(ids) for ids, _ in batch.values())
            if last == self.followed:
                return added
            self.followed = last
        return added

    def _apply(self, added: dict[str, tuple[list[int], list[str]]], stale: list[int]) -> None:
        matcher = self.matching.matcher
        for hash_type, (ids, values) in added.items():
            matcher.add_many(hash_type, ids, values)
        for entry_id in stale:
            matcher.remove(entry_id)

    def reload_peers_if_changed(self) -> None:
        """Pick up an edited peers file (its names appear in match answers)."""
        stamp = _stamp(self.config.federation.peers_file)
        if stamp == self._peers_stamp:
            return
        self._peers_stamp = stamp
        try:
            self.peers = self.config.load_peers()
        except ConfigError as exc:
            log.warning("peers file not reloaded (the node reports why): %s", exc)

    def report(self) -> dict[str, Any]:
        """This worker's counters so far, for the node to export."""
        families = []
        for family in self.metrics.registry.collect():
            if family.name in REPORTED_METRICS:
                samples = [[s.name, s.labels, s.value] for s in family.samples
                           if not s.name.endswith("_created")]
                families.append([family.name, family.type, family.documentation, samples])
        return {"metrics": families}

    def close(self) -> None:
        self.matching.close()
        self.store.close()


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def create_worker_app(worker: MatchWorker) -> web.Application:
    limits = worker.config.limits
    app = web.Application(middlewares=[request_id_middleware, errors_middleware,
                                       auth_middleware],
                          client_max_size=max(limits.max_body_bytes, limits.max_image_bytes) + 1)
    app[MATCHING_KEY] = worker.matching
    add_match_routes(app)
    async def elsewhere(request: web.Request) -> web.Response:
        raise ApiError(404, "NOT_ON_MATCH_LISTENER",
                       f"{request.method} {request.path}: this listener serves only POST "
                       "/v1/match, POST /v1/match/image and GET /healthz; the rest of the API "
                       "is on the node's own port", "path")

    app.router.add_route("*", "/{tail:.*}", elsewhere, name="elsewhere")
    return app


class Stop(asyncio.Event):
    """Set to stop the worker; ``error`` says why, when it is a fault (the exit code is 2)."""

    error: Exception | None = None

    def fail(self, error: Exception) -> None:
        self.error = error
        self.set()


async def follow_forever(worker: MatchWorker, stop: Stop) -> None:
    """``worker.follow`` every ``FOLLOW_SECONDS``; a moved database stops the worker (any
    other error ends the loop, which its supervisor starts again)."""
    while True:
        await asyncio.sleep(FOLLOW_SECONDS)
        try:
            await worker.follow()
        except DatabaseMovedError as exc:
            stop.fail(exc)
            return


async def serve_worker(config: NodeConfig, origin: str, slot: int, stop: Stop,
                       database: tuple[int, int] | None = None,
                       origin_names: dict[str, str] | None = None) -> None:
    """Load, bind, report ready, and serve until ``stop`` is set."""
    assert config.match_workers is not None
    listen = config.match_workers
    worker = MatchWorker(config, origin, database, origin_names)
    runner: GuardedRunner | None = None
    tasks = Supervisor(worker.metrics.background_task_failures)
    try:
        await worker.load()
        runner = GuardedRunner(create_worker_app(worker), max_connections=connection_cap(),
                               handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, listen.host, listen.port, ssl_context=tls_context(config),
                           reuse_port=True)
        await site.start()
        emit({"ready": {"slot": slot, "pid": os.getpid(),
                        "hashes": worker.matching.matcher.count()}})
        tasks.start("follow", lambda: follow_forever(worker, stop))
        tasks.start("report", lambda: every(REPORT_SECONDS, lambda: emit(worker.report())))
        tasks.start("expiry-sweeper", lambda: every(EXPIRY_SWEEP_SECONDS,
                                                    worker.matching.sweep_expired))
        tasks.start("index-settle", lambda: every(SETTLE_SECONDS,
                                                  worker.matching.settle_index))
        tasks.start("peers-check", lambda: every(PEERS_CHECK_SECONDS,
                                                 worker.reload_peers_if_changed))
        await stop.wait()
        if stop.error is not None:
            raise stop.error
    finally:
        await tasks.stop_all()
        if runner is not None:
            await runner.cleanup()
        await worker.store.flush_audit()
        worker.close()


def stop_when_stdin_closes(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """The node holds our stdin open while it lives; EOF means it is gone."""
    def wait() -> None:
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read aborts the
        # interpreter at exit
        while os.read(sys.stdin.fileno(), 65536):
            pass
        with contextlib.suppress(RuntimeError):  # the loop has closed already
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait, name="stdin-watch", daemon=True).start()


def read_handshake(config_path: Path
                   ) -> tuple[NodeConfig, str, tuple[int, int] | None, dict[str, str] | None]:
    """The node's first line on our stdin: its origin, its config text, its database (None
    for a server database) and the names of the origins its peers in force are pinned to."""
    line = sys.stdin.buffer.readline()
    try:
        message = json.loads(line)
        config = node_config_from_text(message["config"], config_path)
        origin, database = str(message["origin"]), message["database"]
        names = message.get("origin_names")
        origin_names = (None if names is None
                        else {str(key): str(value) for key, value in dict(names).items()})
        if database is None:  # a server database: no file to check
            return config, origin, None, origin_names
        return config, origin, (int(database[0]), int(database[1])), origin_names
    except (ValueError, LookupError, TypeError) as exc:
        raise ConfigError(f"no valid start message from the node on stdin ({exc})",
                          "stdin") from None


async def main_async(args: argparse.Namespace) -> None:
    config, origin, database, origin_names = read_handshake(args.config)
    if config.match_workers is None:
        raise ConfigError("no [match_workers] section: this node runs no match workers",
                          "match_workers")
    stop = Stop()
    loop = asyncio.get_running_loop()
    stop_when_stdin_closes(loop, stop)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # Ctrl-C reaches the whole process group; the node stops us itself, so a worker that
    # stopped first would only be reported as died and restarted
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    await serve_worker(config, origin, args.slot, stop, database, origin_names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hashmesh.node.api.match_worker",
                                     description="A match worker (started by `hashmesh run`).")
    parser.add_argument("config", type=Path)
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=(
        f"%(asctime)s %(levelname)s %(name)s[worker {args.slot}]: %(message)s"))
    try:
        asyncio.run(main_async(args))
    except (ConfigError, StoreError, SchemaVersionError, DatabaseMovedError, OSError) as exc:
        log.error("match worker %d stopped: %s", args.slot, " ".join(str(exc).split()))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
