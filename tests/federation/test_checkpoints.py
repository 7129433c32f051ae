"""Issue 17 item 7: witnessed checkpoints detect split views and withholding (SPEC §20).

Real nodes (``cluster.py``) on loopback with real signatures; the hostile origin and the
hostile relay are real HTTP servers written here (``hostile.py``). Background pulls are an
hour apart, so each round is the test's own ``Federation.sync_with`` over real HTTP; the
nodes' own checkpoint loops (signing every second, checking alarms) run by themselves.

* a hostile origin shows one branch to node ``a`` and another to node ``b``, which never
  exchange its records: ``b`` finds the split view in the checkpoint ``a`` witnessed and
  gossips the proof back to ``a``; ``a`` gossips the equivocation evidence it holds;
* a relay that withholds an origin's newer records while passing its checkpoints raises the
  ``behind`` alarm; withholding the checkpoints too raises ``stale``;
* a forged cosignature or checkpoint is refused, naming the field, as a fault of that peer.

Each test fails on a node without checkpoints (it reads no checkpoints, so it raises no
alarm and refuses nothing), checked by reverting ``Federation.exchange_checkpoints``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hashmesh.node.config.peers import add_peer
from hashmesh.protocol.checkpoints import COSIGNATURE_DOMAIN, Checkpoint, Cosignature
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.keys import PublicKey, SigningKey
from hashmesh.protocol.records import SignedRecord
from tests.conftest import free_port
from tests.federation.cluster import Cluster, Node, eventually
from tests.federation.hostile import HostilePeer, OriginLog

IDLE = 3600
HOSTS = ("127.0.0.9", "127.0.0.10")  # the cluster's nodes take .2, .3, .4


def configure_checkpoints(node: Node, *, witness_for: tuple[str, ...] = (),
                          witnesses: dict[str, list[str]] | None = None,
                          max_age: int = 3600, max_behind: int = 600) -> None:
    """Append a ``[checkpoints]`` section to the node's node.toml (before it starts)."""
    lines = ["", "[checkpoints]", "interval_seconds = 1", f"max_age_seconds = {max_age}",
             f"max_behind_seconds = {max_behind}"]
    if witness_for:
        lines.append("witness_for = [" + ", ".join(f'"{o}"' for o in witness_for) + "]")
    if witnesses:
        lines.append("[checkpoints.witnesses]")
        lines += [f'"{origin}" = [' + ", ".join(f'"{k}"' for k in keys) + "]"
                  for origin, keys in witnesses.items()]
    config = node.directory / "node.toml"
    config.write_text(config.read_text() + "\n".join(lines) + "\n")


def metric(node: Node, name: str, **labels: str) -> float:
    value = node.svc.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def sync(node: Node, peer: str) -> int:
    federation = node.svc.federation
    assert federation is not None
    entry = node.svc.peers.by_name(peer)
    assert entry is not None
    return await federation.sync_with(entry)


async def alarms(node: Node) -> list[dict[str, Any]]:
    status = await node.svc.status()
    found: list[dict[str, Any]] = status["checkpoints"]["alarms"]
    return found


def signed_checkpoint(log: OriginLog, upto: int) -> Checkpoint:
    record = log.records[upto - 1]
    return Checkpoint.sign(log.root, origin=log.origin, seq=upto, record_id=record.id,
                           ts=now_ms())


def now_ms() -> int:
    import time

    return int(time.time() * 1000)


@dataclasses.dataclass
class SplitArena:
    cluster: Cluster
    a: Node
    b: Node
    to_a: HostilePeer  # the hostile origin as node a sees it
    to_b: HostilePeer  # the same origin (same root key), showing b another branch

    async def close(self) -> None:
        await self.cluster.stop()
        await self.to_a.stop()
        await self.to_b.stop()


@pytest.fixture
async def split(tmp_path: Path) -> AsyncIterator[SplitArena]:
    """Origin H shows branch X (seq 1-3) to ``a`` and branch Y (same 1-2, another 3) to ``b``.

    ``a`` witnesses H; ``b`` trusts ``a`` as H's witness. ``a`` and ``b`` peer with each
    other but take only each other's records, never H's, so H's branches never meet."""
    cluster = Cluster(tmp_path, pull_interval=IDLE)
    a, b = cluster.make("a"), cluster.make("b")
    to_a = HostilePeer(HOSTS[0], free_port(HOSTS[0]))
    to_b = HostilePeer(HOSTS[1], free_port(HOSTS[1]))
    to_b.log = to_a.log  # one origin: one root key
    to_a.log.extend(2)
    branch_y = to_a.log.fork(2)
    to_a.log.extend(1)
    branch_y.extend(1)
    to_b.log = branch_y
    origin = to_a.origin
    configure_checkpoints(a, witness_for=(origin,), witnesses={origin: [a.node_key]})
    configure_checkpoints(b, witnesses={origin: [a.node_key]})
    for hostile in (to_a, to_b):
        await hostile.start()
    await cluster.start()
    cluster.link("a", "b")  # accept only the cluster's origins from each other
    add_peer(a.peers_file, to_a.peer_entry("h"))
    add_peer(b.peers_file, to_b.peer_entry("h"))
    cluster.reload_peers("a")
    cluster.reload_peers("b")
    arena = SplitArena(cluster, a, b, to_a, to_b)
    yield arena
    await arena.close()


async def test_split_view_is_detected_through_a_gossiped_witnessed_checkpoint(
        split: SplitArena, caplog: pytest.LogCaptureFixture) -> None:
    a, b, origin = split.a, split.b, split.to_a.origin
    await sync(a, "h")  # a holds X
    await sync(b, "h")  # b holds Y
    await sync(b, "a")
    await sync(a, "b")
    x3, y3 = split.to_a.log.records[2].id, split.to_b.log.records[2].id
    assert (await a.heads())[origin] == (3, x3) and (await b.heads())[origin] == (3, y3)
    assert await alarms(a) == await alarms(b) == []  # records alone never meet

    split.to_a.checkpoint_lines = [signed_checkpoint(split.to_a.log, 3).raw]
    split.to_b.checkpoint_lines = [signed_checkpoint(split.to_b.log, 3).raw]
    with caplog.at_level(logging.ERROR, logger="hashmesh.checkpoints"):
        await sync(a, "h")  # a checks H's checkpoint of X and cosigns it as witness
        await sync(b, "h")
        await sync(b, "a")  # b reads a's checkpoints: H's checkpoint of X, cosigned by a
    # (b's pull from a may also bring a's proof of the reverse, if a already pulled b's
    # checkpoint of Y after a push hint: both are split views of H at seq 3)
    found = await alarms(b)
    assert {(x["kind"], x["origin"]) for x in found} == {("split_view", origin)}
    assert any(x3 in x["detail"] and y3 in x["detail"] for x in found)
    assert metric(b, "hashmesh_checkpoint_alarms", kind="split_view") == len(found)
    assert any("ALERT: split view of origin" in r.message for r in caplog.records)
    [proof] = [p for p in await b.svc.store.read(lambda s: s.split_views())
               if p["checkpoint"]["checkpoint"]["id"] == x3]
    assert SignedRecord.from_json(proof["record"]).id == y3
    assert proof["checkpoint"]["cosignatures"][0]["witness"] == a.node_key
    # H's records never met: neither node holds the other branch, nobody froze anything
    assert await a.svc.store.read(lambda s: s.frozen()) == {}

    await sync(a, "b")  # the proof is gossiped back: a learns that b was shown another chain
    # a holds b's proof, and finds one of its own in the checkpoint of Y that b keeps
    held = await a.svc.store.read(lambda s: s.split_views())
    assert proof in held
    assert {(p["checkpoint"]["checkpoint"]["id"], SignedRecord.from_json(p["record"]).id)
            for p in held} == {(x3, y3), (y3, x3)}
    assert {x["kind"] for x in await alarms(a)} == {"split_view"}
    assert metric(a, "hashmesh_checkpoint_alarms", kind="split_view") == 2


async def test_equivocation_evidence_travels_over_the_peer_routes(split: SplitArena) -> None:
    """``a`` meets both branches and freezes H; ``b``, which never sees X, freezes H from the
    evidence ``a`` serves at ``/v1/proofs`` (today's evidence no longer stays local)."""
    a, b, origin = split.a, split.b, split.to_a.origin
    other = HostilePeer(HOSTS[1], free_port(HOSTS[1]))
    other.log = split.to_b.log
    other.node = SigningKey.generate()
    await other.start()
    try:
        add_peer(a.peers_file, other.peer_entry("h2"))
        split.cluster.reload_peers("a")

        async def a_frozen() -> bool:
            for peer in ("h", "h2"):  # a's background round with h2 may come first
                try:
                    await sync(a, peer)
                except ProtocolError:
                    pass  # the conflict ends the round, as it always did
            return origin in await a.svc.store.read(lambda s: s.frozen())

        await eventually(a_frozen, timeout=10, what="a freezes H")
        await sync(b, "h")
        assert await b.svc.store.read(lambda s: s.frozen()) == {}
        await sync(b, "a")
        assert origin in await b.svc.store.read(lambda s: s.frozen())
        [evidence] = await b.svc.store.read(lambda s: s.evidence())
        assert {evidence["first"]["head"]["seq"], evidence["second"]["head"]["seq"]} == {3}
        assert metric(b, "hashmesh_equivocation_evidence") == 1
    finally:
        await other.stop()


# -- withholding ---------------------------------------------------------------------------


@dataclasses.dataclass
class RelayArena:
    cluster: Cluster
    origin: Node  # honest origin O
    witness: Node  # W, O's witness
    victim: Node  # D, which reaches O only through the relay
    relay: HostilePeer

    async def close(self) -> None:
        await self.cluster.stop()
        await self.relay.stop()


@pytest.fixture
async def relayed(tmp_path: Path) -> AsyncIterator[RelayArena]:
    cluster = Cluster(tmp_path, pull_interval=IDLE)
    o, w, d = cluster.make("o"), cluster.make("w"), cluster.make("d")
    configure_checkpoints(o, witnesses={o.origin: [w.node_key]})
    configure_checkpoints(w, witness_for=(o.origin,), witnesses={o.origin: [w.node_key]})
    configure_checkpoints(d, witnesses={o.origin: [w.node_key]}, max_age=4, max_behind=2)
    relay = HostilePeer(HOSTS[0], free_port(HOSTS[0]))
    await relay.start()
    await cluster.start()
    cluster.link("o", "w")
    entry = relay.peer_entry("relay")
    add_peer(d.peers_file, dataclasses.replace(entry, accept_origins=(
        PublicKey.from_id(o.origin),)))
    for name in ("o", "w", "d"):
        cluster.reload_peers(name)
    arena = RelayArena(cluster, o, w, d, relay)
    yield arena
    await arena.close()


async def log_lines(node: Node, origin: str) -> list[bytes]:
    rows = await node.svc.store.read(lambda s: s.reader().execute(
        "SELECT raw FROM records WHERE origin=? ORDER BY seq", (origin,)).fetchall())
    return [bytes(raw) for (raw,) in rows]


async def relay_honestly(arena: RelayArena) -> None:
    """The relay passes on what the witness holds: O's log and its witnessed checkpoints."""
    lines = await log_lines(arena.witness, arena.origin.origin)
    arena.relay.lines = lines
    arena.relay.heads_lines = [SignedRecord.from_bytes(lines[-1]).stub().raw]
    rows = await arena.witness.svc.store.read(lambda s: s.all_checkpoints())
    arena.relay.checkpoint_lines = [raw for _, raw, _ in rows]


async def witnessed_round(arena: RelayArena) -> None:
    """O signs a checkpoint of its head; W pulls O's records and checkpoint and cosigns."""
    federation = arena.origin.svc.federation
    assert federation is not None
    await federation.checkpoints.sign_own()
    await sync(arena.witness, "o")


async def test_relay_withholding_newer_records_then_checkpoints_raises_the_alarms(
        relayed: RelayArena, caplog: pytest.LogCaptureFixture) -> None:
    o, d, origin = relayed.origin, relayed.victim, relayed.origin.origin
    await o.add("0" * 63 + "1")
    await witnessed_round(relayed)
    await relay_honestly(relayed)
    await sync(d, "relay")
    status = (await d.svc.status())["checkpoints"]["origins"][origin]
    assert status["newest_witnessed"]["cosigned_by"] == [relayed.witness.node_key]
    assert status["head_seq"] == status["newest_witnessed"]["seq"] == 2
    assert await alarms(d) == []

    # The relay keeps serving O's old log but passes W's newer checkpoints: behind.
    old_log, old_heads = relayed.relay.lines, relayed.relay.heads_lines
    await o.add("0" * 63 + "2")
    await witnessed_round(relayed)
    await relay_honestly(relayed)
    relayed.relay.lines, relayed.relay.heads_lines = old_log, old_heads
    await sync(d, "relay")
    assert (await d.heads())[origin][0] == 2

    async def alarmed(kind: str) -> bool:
        await sync(d, "relay")
        return kind in [a["kind"] for a in await alarms(d)]

    with caplog.at_level(logging.ERROR, logger="hashmesh.checkpoints"):
        await eventually(lambda: alarmed("behind"), timeout=15, what="behind alarm")
    assert metric(d, "hashmesh_checkpoint_alarms", kind="behind") == 1
    assert any("ALERT: checkpoints of origin" in r.message and "behind" in r.message
               for r in caplog.records)

    # Now it withholds the checkpoints too, serving only the old one: it goes stale.
    old_checkpoints = relayed.relay.checkpoint_lines
    relayed.relay.checkpoint_lines = [line for line in old_checkpoints or []
                                      if Checkpoint.from_bytes(line).seq == 2]
    await eventually(lambda: alarmed("stale"), timeout=15, what="stale alarm")
    assert metric(d, "hashmesh_checkpoint_alarms", kind="stale") == 1
    age = metric(d, "hashmesh_witnessed_checkpoint_age_seconds", origin=origin)
    assert age > 4


# -- forged checkpoints ----------------------------------------------------------------------


@pytest.fixture
async def lone(tmp_path: Path) -> AsyncIterator[tuple[Node, HostilePeer, aiohttp.ClientSession]]:
    cluster = Cluster(tmp_path, pull_interval=IDLE)
    victim = cluster.make("victim")
    hostile = HostilePeer(HOSTS[0], free_port(HOSTS[0]))
    hostile.log.extend(2)
    witness = SigningKey.generate()
    configure_checkpoints(victim, witnesses={hostile.origin: [witness.id]})
    await hostile.start()
    await cluster.start()
    add_peer(victim.peers_file, hostile.peer_entry("hostile"))
    cluster.reload_peers("victim")
    session = aiohttp.ClientSession()
    hostile.witness = witness  # type: ignore[attr-defined]
    yield victim, hostile, session
    await session.close()
    await cluster.stop()
    await hostile.stop()


@pytest.mark.parametrize(("forgery", "path"), [
    ("cosignature", "hostile:checkpoints[0].cosignatures[0].sig"),
    ("checkpoint", "hostile:checkpoints[0].sig"),
])
async def test_forged_cosignature_or_checkpoint_is_refused_naming_the_field(
        lone: tuple[Node, HostilePeer, aiohttp.ClientSession], forgery: str, path: str) -> None:
    victim, hostile, _ = lone
    witness: SigningKey = hostile.witness  # type: ignore[attr-defined]
    honest = signed_checkpoint(hostile.log, 2)
    if forgery == "cosignature":  # the witness's name, someone else's signature
        forged = honest.with_cosignatures([Cosignature(
            witness.id, SigningKey.generate().sign(COSIGNATURE_DOMAIN + honest.body.raw))])
    else:  # a checkpoint "of" the origin signed by another key, cosigned for real
        forged = dataclasses.replace(honest, sig=SigningKey.generate().sign(
            b"hashmesh/checkpoint/v1\n" + honest.body.raw)).cosign(witness)
    hostile.checkpoint_lines = [forged.raw]
    with pytest.raises(ProtocolError) as caught:
        await sync(victim, "hostile")
    assert (caught.value.code, caught.value.path) == ("BAD_SIGNATURE", path)
    # (its background link, poked by the records stored, may have refused it too)
    assert metric(victim, "hashmesh_peer_faults_total", peer="hostile",
                  code="BAD_SIGNATURE") >= 1
    assert await victim.svc.store.read(lambda s: s.checkpoints_of(hostile.origin)) == []
    # the records of that round were kept; the same checkpoint, honestly cosigned, is taken
    assert (await victim.heads())[hostile.origin][0] == 2
    hostile.checkpoint_lines = [honest.cosign(witness).raw]
    await sync(victim, "hostile")
    [(raw, _)] = await victim.svc.store.read(lambda s: s.checkpoints_of(hostile.origin))
    assert Checkpoint.from_bytes(raw).witnesses == {witness.id}
