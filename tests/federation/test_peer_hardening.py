"""Heavy and odd requests between peers cost what they should, and say what went wrong.

- An unsigned federation request is refused on its headers, before a byte of its body is
  read; a signed one is read only up to its route's own limit (64 KiB for a hint), never up
  to the local API's 20 MiB image limit.
- A peer's heads are parsed on a worker thread, and only those of origins we take from it.
- A redirect and a timeout fail the round with what happened (the ``Location``, which
  limit), not an empty page or a bare ``TimeoutError``.

The victim is a real node on loopback with a real hostile peer (``hostile.py``), as in
``test_hostile.py``; the raw requests are written on a plain socket so that nothing between
the test and the node buffers or completes them.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hashmesh.node.federation import sync
from hashmesh.node.federation.errors import PeerProtocolError, PeerTimeoutError
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import SignedRecord
from tests.federation.hostile import NDJSON, ndjson
from tests.federation.test_hostile import Arena, _is, open_arena

CHUNK = b"x" * 65_536
TEN_MIB = 10 * 1024 * 1024


@pytest.fixture
async def arena(tmp_path: Path) -> AsyncIterator[Arena]:
    opened = await open_arena(tmp_path / "arena")
    yield opened
    await opened.close()


async def _chunked_post(arena: Arena, path: str, headers: dict[str, str], *, send: int,
                        then_wait: bool) -> tuple[int, bytes, int]:
    """POST a chunked body to the victim on a raw socket: ``send`` bytes of it, then either
    wait for the answer without sending the rest (``then_wait``) or stop when the node
    answers or closes. Returns the status, the answer's head and body bytes, and how many
    body bytes were written."""
    victim = arena.victim
    reader, writer = await asyncio.open_connection(victim.host, victim.port)
    lines = [f"POST {path} HTTP/1.1", f"Host: {victim.host}:{victim.port}",
             "Content-Type: application/json", "Transfer-Encoding: chunked",
             *(f"{name}: {value}" for name, value in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    written = 0
    answer = asyncio.ensure_future(reader.read(4096))
    try:
        while written < send and not answer.done():
            writer.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
            written += len(CHUNK)
            await writer.drain()
        if not then_wait:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass  # the node answered and closed while we were still sending: what we want
    try:
        head = await asyncio.wait_for(answer, timeout=10)
    finally:
        writer.close()
    status = int(head.split(b" ", 2)[1])
    return status, head, written


async def test_unsigned_10_mib_post_is_refused_on_its_headers_before_its_body_is_read(
        arena: Arena) -> None:
    # The node answers although only 1 MiB of a 10 MiB body has been sent, and never will be.
    status, answer, _ = await _chunked_post(arena, "/v1/notify", {}, send=1024 * 1024,
                                            then_wait=True)
    assert status == 401
    assert b'"MISSING_SIGNATURE"' in answer and b'"field": "Signature-Input"' in answer
    assert arena.refused("MISSING_SIGNATURE") == 1

    # Sent in full, 10 MiB cost the node no 10 MiB buffer: what it allocated meanwhile
    # (node and test in one process; the test reuses one 64 KiB chunk) stays small.
    gc.collect()
    tracemalloc.start()
    try:
        status, _, written = await _chunked_post(arena, "/v1/bodies", {}, send=TEN_MIB,
                                                 then_wait=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 401
    print(f"unsigned 10 MiB POST: {written} bytes written before the answer, "
          f"peak traced memory {peak / 1e6:.1f} MB")
    assert peak < 4 * 1024 * 1024, f"{peak} bytes allocated while a 10 MiB body was refused"


async def test_signed_post_is_read_only_up_to_its_routes_own_limit(arena: Arena) -> None:
    """A peer's hint is read up to 64 KiB, not up to the 20 MiB the local API's app allows
    for images: the node answers after 1 MiB of a body that never ends."""
    url = arena.victim.url + "/v1/notify"
    body = b"x" * (1024 * 1024)
    headers = arena.hostile.sign("POST", url, body)
    del headers["Content-Type"]
    status, answer, written = await _chunked_post(arena, "/v1/notify", headers,
                                                  send=len(body), then_wait=True)
    assert status == 413
    assert b'"BODY_TOO_LARGE"' in answer and b"65536" in answer
    assert b'"field": "body"' in answer
    assert written <= len(body)
    assert arena.hostile.requests["heads"] == 0, "a refused hint made the victim pull"


async def test_a_peers_heads_are_parsed_off_the_event_loop_and_only_for_origins_taken(
        arena: Arena, monkeypatch: pytest.MonkeyPatch) -> None:
    """~4 MB of heads of origins the victim does not take from this peer: the round parses
    them on a worker thread, skips them unparsed, and pulls the one origin it takes."""
    record = arena.hostile.log.append()
    model = record.stub().raw
    needle = f'"origin":"{record.head.origin}"'.encode()
    strangers = [model.replace(needle, f'"origin":"{SigningKey.generate().id}"'.encode())
                 for _ in range(10_500)]
    arena.hostile.heads_lines = [*strangers, model]
    payload = ndjson(arena.hostile.heads_lines)
    assert len(payload) > 4_000_000

    started = time.perf_counter()
    for line in strangers:  # what the round used to do on the event loop
        SignedRecord.from_bytes(line)
    inline = time.perf_counter() - started

    threads: list[threading.Thread] = []
    parsed: list[SignedRecord] = []
    real = sync.parse_heads

    def spy(*args: object) -> list[SignedRecord]:
        heads = real(*args)  # type: ignore[arg-type]
        if args[2] == "hostile":  # the victim's other links run their own rounds meanwhile
            threads.append(threading.current_thread())
            parsed.extend(heads)
        return heads

    monkeypatch.setattr(sync, "parse_heads", spy)
    stalls: list[float] = []
    pulling = asyncio.ensure_future(arena.pull())
    while not pulling.done():  # how long the event loop went without running us
        tick = time.perf_counter()
        await asyncio.sleep(0.005)
        stalls.append(time.perf_counter() - tick - 0.005)

    assert await pulling == 1
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert [head.head.origin for head in parsed] == [record.head.origin]
    assert await arena.held() == {1: record.id}
    print(f"4 MB of heads: parsing them all takes {inline * 1000:.0f} ms; the event loop's "
          f"longest stall during the round was {max(stalls) * 1000:.1f} ms")


async def test_a_redirect_fails_the_round_naming_where_it_points(arena: Arena) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("https://moved.example/v1/heads")

    arena.hostile.on_heads = moved
    link = arena.federation.links["hostile"]
    link.poke()
    await _eventually_failed(arena)

    error = link.health.last_error
    assert error is not None and error.kind == "PeerProtocolError"
    assert "HTTP 301 redirect to https://moved.example/v1/heads" in error.message
    assert "/v1/heads" in error.message and "set its url in peers.toml" in error.message
    with pytest.raises(PeerProtocolError) as refused:
        await arena.pull()
    assert refused.value.code == "REDIRECT"


async def test_a_timeout_fails_the_round_saying_which_limit_ran_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "REQUEST_TIMEOUT",
                        aiohttp.ClientTimeout(total=5, sock_connect=1, sock_read=0.3))
    arena = await open_arena(tmp_path / "arena")
    try:
        await _check_timeout_detail(arena)
    finally:
        await arena.close()


async def _check_timeout_detail(arena: Arena) -> None:

    async def silent(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.Response(body=b"", content_type=NDJSON)

    arena.hostile.on_heads = silent
    link = arena.federation.links["hostile"]
    link.poke()
    await _eventually_failed(arena)

    error = link.health.last_error
    assert error is not None and error.kind == "PeerTimeoutError"
    assert f"GET {arena.hostile.url}/v1/heads: no byte for 0.3 s" in error.message
    with pytest.raises(PeerTimeoutError, match="no byte for 0.3 s while reading the answer"):
        await arena.pull()


async def _eventually_failed(arena: Arena) -> None:
    link = arena.federation.links["hostile"]
    deadline = time.monotonic() + 10
    while not await _is(link.health.failures > 0):
        assert time.monotonic() < deadline, "the round did not fail"
        await asyncio.sleep(0.02)
