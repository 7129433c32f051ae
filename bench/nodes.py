"""Real node processes on loopback for the sync and propagation benchmarks.

Each node is a ``hashmesh run`` subprocess with its own directory, 127.0.0.x address and
port, so two nodes use two cores as they would on two machines.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hashmesh.node.cli.local import create_node_dir
from hashmesh.node.config.keyfile import read_secret_key
from hashmesh.node.config.node import load_node_config
from hashmesh.node.config.peers import PeerConfig, add_peer
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.keys import PublicKey, SigningKey
from hashmesh.protocol.log import LogHead, append
from hashmesh.protocol.records import AddBody, HashEntry, Item, SignedRecord


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class BenchNode:
    name: str
    directory: Path
    host: str
    port: int
    token: str
    origin: str
    process: subprocess.Popen[bytes] | None = None
    match_port: int | None = None  # the [match_workers] port, if the node runs workers

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def match_url(self) -> str:
        """Where matches are served: the match workers' port, or the node's own."""
        return self.url if self.match_port is None else f"http://{self.host}:{self.match_port}"

    def set_match_workers(self, processes: int) -> None:
        """Write (or, with 0, remove) the ``[match_workers]`` section of the node's config."""
        text = self.config.read_text().split("\n[match_workers]\n", 1)[0]
        self.match_port = None
        if processes:
            self.match_port = free_port(self.host)
            text += (f"\n[match_workers]\nprocesses = {processes}\n"
                     f"port = {self.match_port}\n")
        self.config.write_text(text)

    def pids(self) -> list[int]:
        """The node process and its children (match workers)."""
        assert self.process is not None
        parent = self.process.pid
        found = [parent]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == parent:
                    found.append(int(entry.name))
        return found

    @property
    def config(self) -> Path:
        return self.directory / "node.toml"

    def start(self, timeout: float = 60) -> None:
        log = open(self.directory / "node.log", "ab")  # noqa: SIM115 - owned by the child
        command = [sys.executable, "-m", "hashmesh.node.cli.main", "run",
                   "--config", str(self.config), "--log-level", "WARNING"]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start; see {self.directory / 'node.log'}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def peak_rss_mb(self) -> float:
        """Peak RSS (VmHWM) of the node process."""
        assert self.process is not None
        return peak_rss_mb(self.process.pid)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def head_seq(self, origin: str) -> int:
        import sqlite3

        db = self.directory / "data" / "hashmesh.db"
        if not db.exists():
            return 0
        with sqlite3.connect(db, timeout=30) as conn:
            row = conn.execute("SELECT head_seq FROM origins WHERE origin=?",
                               (origin,)).fetchone()
        return 0 if row is None else int(row[0])


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def make_node(root: Path, name: str, host: str, pull_interval: int = 1,
              limits: dict[str, int] | None = None) -> BenchNode:
    config_path, token, origin = create_node_dir(root / name, name=name, host=host,
                                                 port=free_port(host))
    text = config_path.read_text().replace("pull_interval_seconds = 30",
                                           f"pull_interval_seconds = {pull_interval}")
    if limits:
        text += "\n[limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items())
    config_path.write_text(text)
    port = load_node_config(config_path).listen.port
    return BenchNode(name, root / name, host, port, token, origin)


def link(a: BenchNode, b: BenchNode) -> None:
    for node, other in ((a, b), (b, a)):
        key = PublicKey.from_id(other.origin)
        node_key = read_secret_key(load_node_config(other.config).keys.node).public
        add_peer(node.directory / "peers.toml",
                 PeerConfig(name=other.name, url=other.url, node_key=node_key, origin=key,
                            accept_vouched=True))


def random_pdq(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def fill_log(node: BenchNode, hashes: int, per_record: int, seed: int = 1) -> float:
    """Sign ``hashes`` pdq hashes into ``node``'s own log, ``per_record`` items per record.

    Returns the seconds spent signing (stored in bulk transactions, not timed as sync).
    """
    key: SigningKey = read_secret_key(load_node_config(node.config).keys.root)
    rng = random.Random(seed)
    store = Store(load_node_config(node.config).db_path)
    head: LogHead | None = store.head(key.id)  # after init's key record
    signing = 0.0
    batch: list[SignedRecord] = []
    try:
        for start in range(0, hashes, per_record):
            items = tuple(Item(hashes=(HashEntry("pdq", random_pdq(rng)),), list="ncii")
                          for _ in range(min(per_record, hashes - start)))
            began = time.perf_counter()
            record = append(head, signer=key, origin=key.id, body=AddBody(items), now_ms=1)
            signing += time.perf_counter() - began
            head = LogHead.of(record)
            batch.append(record)
            if len(batch) >= 2000:
                store.ingest(batch, source="bench")
                batch = []
        store.ingest(batch, source="bench")
    finally:
        store.close()
    return signing


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
