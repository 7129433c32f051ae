"""Signing-cost benchmark: one signature per hash, or one per batch of 256 items?

Signs, parses and verifies N pdq hashes (default 1,000,000) two ways, with the protocol's own
code exactly as a node uses it:

* ``single``  -- N ``add`` records of one item each;
* ``batch``   -- N / 256 ``add`` records of 256 items each (the v1 limit, under 64 KiB).

Phases are timed separately: ``sign`` is ``protocol.signing.sign_record`` (canonical encoding,
body digest, Ed25519 signature and the signer's own strict re-parse), ``parse`` is
``SignedRecord.from_bytes`` (strict JSON, schema and hash validation, canonical check, body
digest), ``verify`` is ``protocol.signing.verify`` (key validity, Ed25519 verification).
Bodies are built before timing. Each figure is the median of ``--runs`` runs.

The single-record case costs about a millisecond per hash in Python, so by default it runs on a
sample (``--single-sample``, 100,000) and the table extrapolates linearly to N, marked ``*``;
``--single-sample 0`` runs it in full.

    python bench/sign_bench.py                        # 1M hashes, single case on a 100k sample
    python bench/sign_bench.py --quick                # 20k hashes, 1 run: a smoke test
    python bench/sign_bench.py --single-sample 0      # the full 1M single records (slow)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hashmesh.protocol.keys import SigningKey  # noqa: E402
from hashmesh.protocol.records import MAX_ITEMS, AddBody, SignedRecord, new_salt  # noqa: E402
from hashmesh.protocol.signing import KeyGrant, KeyRing, sign_record, verify  # noqa: E402

ROOT = SigningKey(bytes(range(32)))
SIGNER = SigningKey(bytes(range(32, 64)))
T0 = 1_700_000_000_000
CHUNK = 256  # records are signed, parsed and verified in chunks to bound memory


@dataclass
class Phase:
    sign: float = 0.0
    parse: float = 0.0
    verify: float = 0.0
    records: int = 0
    hashes: int = 0
    bytes: int = 0


def bodies(hashes: int, per_record: int, seed: int) -> Iterator[AddBody]:
    """Add bodies of ``per_record`` items, one random pdq hash each, ``hashes`` in total."""
    rng = random.Random(seed)
    done = 0
    while done < hashes:
        count = min(per_record, hashes - done)
        items = [{"hashes": [{"type": "pdq", "value": f"{rng.getrandbits(256):064x}",
                              "quality": 100}],
                  "list": "ncii", "tier": "helpline_verified"} for _ in range(count)]
        yield AddBody.from_json({"items": items, "salt": new_salt()}, "body")
        done += count


def run(hashes: int, per_record: int, seed: int) -> Phase:
    """Sign, parse and verify ``hashes`` hashes as a chain of records of ``per_record`` items."""
    ring = KeyRing(ROOT.id, {SIGNER.id: (KeyGrant(SIGNER.id, 0),)})
    phase = Phase()
    source = bodies(hashes, per_record, seed)
    prev: str | None = None
    seq = 0
    while True:
        chunk = [b for _, b in zip(range(CHUNK), source, strict=False)]
        if not chunk:
            return phase
        start = time.perf_counter()
        raws = []
        for body in chunk:
            seq += 1
            record = sign_record(signer=SIGNER, origin=ROOT.id, seq=seq, prev=prev,
                                 ts=T0 + seq, body=body)
            prev = record.id
            raws.append(record.raw)
        signed = time.perf_counter()
        parsed = [SignedRecord.from_bytes(raw) for raw in raws]
        parsed_at = time.perf_counter()
        for record in parsed:
            verify(record, ring)
        verified = time.perf_counter()
        phase.sign += signed - start
        phase.parse += parsed_at - signed
        phase.verify += verified - parsed_at
        phase.records += len(raws)
        phase.hashes += sum(len(body.items) for body in chunk)
        phase.bytes += sum(len(raw) for raw in raws)


def median_run(hashes: int, per_record: int, runs: int) -> Phase:
    results = [run(hashes, per_record, seed) for seed in range(runs)]
    return Phase(
        sign=statistics.median(r.sign for r in results),
        parse=statistics.median(r.parse for r in results),
        verify=statistics.median(r.verify for r in results),
        records=results[0].records, hashes=results[0].hashes, bytes=results[0].bytes)


def scaled(phase: Phase, factor: float) -> Phase:
    return Phase(phase.sign * factor, phase.parse * factor, phase.verify * factor,
                 round(phase.records * factor), round(phase.hashes * factor),
                 round(phase.bytes * factor))


def table(rows: list[tuple[str, Phase, bool]], hashes: int) -> str:
    header = (f"{'layout':<22}{'records':>10}{'phase':>8}{'seconds':>10}{'records/s':>12}"
              f"{'hashes/s':>12}{'us/hash':>9}")
    lines = [header, "-" * len(header)]
    for name, phase, extrapolated in rows:
        mark = "*" if extrapolated else " "
        for label, seconds in (("sign", phase.sign), ("parse", phase.parse),
                               ("verify", phase.verify),
                               ("total", phase.sign + phase.parse + phase.verify)):
            lines.append(f"{name:<22}{phase.records:>10,}{label:>8}{seconds:>9.1f}{mark}"
                         f"{phase.records / seconds:>12,.0f}{phase.hashes / seconds:>12,.0f}"
                         f"{seconds / phase.hashes * 1e6:>9.1f}")
        lines.append(f"{'':<22}{'bytes':>18}: {phase.bytes:,} "
                     f"({phase.bytes / phase.hashes:.0f} per hash, "
                     f"{phase.bytes / phase.records:,.0f} per record)")
    if any(extrapolated for _, _, extrapolated in rows):
        lines.append(f"(* measured on a sample and extrapolated linearly to {hashes:,} hashes)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--single-sample", type=int, default=100_000,
                        help="hashes for the single-record case (0: all of --hashes)")
    parser.add_argument("--batch", type=int, default=MAX_ITEMS, help="items per batched record")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20k hashes, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.hashes, args.single_sample, args.runs = 20_000, 0, 1
    sample = args.single_sample or args.hashes
    sample = min(sample, args.hashes)

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.1f}; {args.hashes:,} pdq hashes, median of {args.runs}",
          flush=True)
    started = time.perf_counter()
    batch = median_run(args.hashes, args.batch, args.runs)
    print(f"batch done in {time.perf_counter() - started:.0f}s", flush=True)
    started = time.perf_counter()
    single = median_run(sample, 1, args.runs)
    print(f"single done in {time.perf_counter() - started:.0f}s", flush=True)
    rows = [("single (1 item)", scaled(single, args.hashes / sample), sample < args.hashes),
            (f"batch ({args.batch} items)", batch, False)]
    print(table(rows, args.hashes))
    total_single = single.sign + single.parse + single.verify
    total_batch = batch.sign + batch.parse + batch.verify
    ratio = (total_single * args.hashes / sample) / total_batch
    factor = args.hashes / sample
    print(f"batching is {ratio:.1f}x faster end to end per hash: sign phase "
          f"{single.sign * factor / batch.sign:.1f}x, parse phase "
          f"{single.parse * factor / batch.parse:.1f}x, verify phase "
          f"{single.verify * factor / batch.verify:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
