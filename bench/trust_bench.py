"""The cost of issue 17's trust machinery: witnessed checkpoints and salts.

Real ``hashmesh run`` processes on loopback (``bench/nodes.py``), as ``sync_bench``:

* **Cold sync, checkpoints off and on.** Node A holds N pdq hashes (records of 256 items);
  node B starts empty and pulls everything; timed until B holds A's log and matches the last
  hash. *Off*: ``[checkpoints] interval_seconds = 0`` (nothing signed; each round still asks
  the peer's ``/v1/checkpoints`` and ``/v1/proofs``, which answer empty). *On*: both sign
  every second, B witnesses A (cosigns after checking against its chain) and A witnesses B.
* **Propagation over 3 hops** (A - B - C, C does not peer with A), off and on: an add on A
  until C matches it, a revoke until C stops matching.
* **Salts.** A v2 record carries a 16-byte salt in every ``add`` and ``feedback`` body; an
  unsalted body is not a valid v2 record, so nodes cannot be made to sync one. What is
  measured instead is exact: the bytes of the same payload signed as v2 (salted) and as v1
  (the last unsalted form), per record, at 1 and 256 items. Drawing a salt is one
  ``os.urandom(16)`` per record.

Alternating runs (off, on, off, on, ...) so that a change in the machine's load hits both;
medians are printed.

    python -m bench.trust_bench --quick            # 100k hashes, 2 runs each, 10 trials
    python -m bench.trust_bench                    # 1M hashes, 3 runs each, 20 trials
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.nodes import BenchNode, fill_log, link, make_node, random_pdq
from bench.sync_bench import p99, wait_until
from bench.sync_bench import propagation as sync_propagation
from hashmesh.node.config.keyfile import read_secret_key
from hashmesh.node.config.node import load_node_config
from hashmesh.protocol.checkpoints import Checkpoint
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import AddBody, HashEntry, Item
from hashmesh.protocol.signing import sign_record


def node_key(node: BenchNode) -> str:
    return read_secret_key(load_node_config(node.config).keys.node).id


def configure(nodes: list[BenchNode], on: bool) -> None:
    """``[checkpoints]`` for every node: off (nothing signed) or on (sign every second,
    each node witnesses its neighbours' origins and lists them as their witnesses)."""
    keys = {n.name: node_key(n) for n in nodes}
    for index, node in enumerate(nodes):
        if not on:
            text = "\n[checkpoints]\ninterval_seconds = 0\n"
        else:
            neighbours = [nodes[i] for i in (index - 1, index + 1) if 0 <= i < len(nodes)]
            text = ("\n[checkpoints]\ninterval_seconds = 1\nwitness_for = ["
                    + ", ".join(f'"{n.origin}"' for n in neighbours) + "]\n"
                    "[checkpoints.witnesses]\n")
            for other in nodes:
                watchers = [keys[n.name] for n in nodes
                            if abs(nodes.index(n) - nodes.index(other)) == 1]
                text += f'"{other.origin}" = [' + ", ".join(f'"{k}"' for k in watchers) + "]\n"
        node.config.write_text(node.config.read_text() + text)


def cold_sync(hashes: int, on: bool, timeout: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = make_node(root, "a", "127.0.0.2")
        b = make_node(root, "b", "127.0.0.3")
        link(a, b)
        configure([a, b], on)
        fill_log(a, hashes, 256)
        records = -(-hashes // 256)
        rng = random.Random(1)
        values = [random_pdq(rng) for _ in range(hashes)]
        a.start()
        try:
            started = time.monotonic()
            b.start()
            query = {"hashes": [{"type": "pdq", "value": values[-1]}]}
            wait_until(lambda: b.head_seq(a.origin) >= records + 1, timeout)
            wait_until(lambda: b.call("POST", "/v1/match", query)["results"][0]["matches"], 30)
            elapsed = time.monotonic() - started
            if on:  # the feature did run: A's checkpoint reached B and B cosigned it
                wait_until(lambda: b.call("GET", "/v1/status")["checkpoints"]["origins"][
                    a.origin]["newest_witnessed"] is not None, 30)
        finally:
            b.stop()
            a.stop()
    return elapsed


def propagation(trials: int, on: bool) -> dict[str, list[float]]:
    return sync_propagation(trials, prepare=lambda nodes: configure(nodes, on))


def salt_bytes() -> list[tuple[int, int, int]]:
    """(items, v1 unsalted bytes, v2 salted bytes) of one record of the same payload."""
    key = SigningKey(bytes(32))
    rng = random.Random(3)
    rows = []
    for count in (1, 256):
        items = tuple(Item(hashes=(HashEntry("pdq", random_pdq(rng)),), list="ncii")
                      for _ in range(count))
        sizes = []
        for version, salt in ((1, None), (2, "A" * 21 + "A")):
            record = sign_record(signer=key, origin=key.id, seq=2, prev="0" * 64, ts=1,
                                 body=AddBody(items, salt=salt), version=version)
            sizes.append(len(record.raw))
        rows.append((count, sizes[0], sizes[1]))
    return rows


def checkpoint_bytes() -> tuple[int, int]:
    key = SigningKey(bytes(32))
    bare = Checkpoint.sign(key, origin=key.id, seq=1_000_000, record_id="0" * 64,
                           ts=int(time.time() * 1000))
    full = bare
    for i in range(16):
        full = full.cosign(SigningKey(bytes([i + 1]) * 32))
    return len(bare.raw), len(full.raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k hashes, 2 runs, 10 trials")
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="cold syncs per mode")
    parser.add_argument("--trials", type=int, default=20, help="propagation trials per mode")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    if args.quick:
        args.hashes, args.runs, args.trials = 100_000, 2, 10
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores shared with others)")

    print("\nsalts: bytes of one add record, same payload")
    for items, unsalted, salted in salt_bytes():
        print(f"  {items:>3} item(s): v1 unsalted {unsalted:>6,} B, v2 salted {salted:>6,} B"
              f"  (+{salted - unsalted} B, +{100 * (salted - unsalted) / unsalted:.1f}%)")
    bare, full = checkpoint_bytes()
    print(f"checkpoint: {bare} B bare, {full:,} B with 16 cosignatures")

    syncs: dict[bool, list[float]] = {False: [], True: []}
    for run in range(args.runs):
        for on in (False, True):
            seconds = cold_sync(args.hashes, on, args.timeout)
            syncs[on].append(seconds)
            print(f"cold sync {args.hashes:,} hashes, checkpoints {'on ' if on else 'off'}, "
                  f"run {run + 1}: {seconds:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\n{'cold sync, 2 nodes':<28}{'median s':>10}{'runs':>30}")
    for on in (False, True):
        values = syncs[on]
        print(f"{'checkpoints ' + ('on' if on else 'off'):<28}{statistics.median(values):>10.1f}"
              f"{' / '.join(f'{v:.1f}' for v in values):>30}")

    print(f"\n{'propagation A-B-C':<28}{'median':>10}{'p99':>10}{'max':>10}  ({args.trials} "
          "trials)")
    for on in (False, True):
        times = propagation(args.trials, on)
        for kind, values in times.items():
            label = f"{kind}, checkpoints {'on' if on else 'off'}"
            print(f"{label:<28}{statistics.median(values):>9.3f}s{p99(values):>9.3f}s"
                  f"{max(values):>9.3f}s", flush=True)


if __name__ == "__main__":
    main()
