"""Serving helpers: stopping while match workers start, and the peer URL ``hashmesh id`` gives."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from hashmesh.node.api.server import _unless_stopped
from hashmesh.node.cli.local import peer_url
from hashmesh.node.config.node import ListenConfig
from tests.conftest import NodeDir


async def test_a_stop_while_starting_cancels_the_start() -> None:
    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow_start() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await asyncio.wait_for(_unless_stopped(slow_start(), stop), 5) is False
    assert cancelled.is_set()


async def test_a_start_that_fails_raises_its_error() -> None:
    async def failing() -> None:
        raise RuntimeError("port taken")

    with pytest.raises(RuntimeError, match="port taken"):
        await _unless_stopped(failing(), asyncio.Event())


def test_peer_url_is_the_public_url_or_the_peer_listener(
        node_dir: NodeDir, capsys: pytest.CaptureFixture[str]) -> None:
    config = node_dir.config()
    listen = config.peer_listen
    assert peer_url(config) == f"http://{listen.host}:{listen.port}"
    public = dataclasses.replace(config, federation=dataclasses.replace(
        config.federation, public_url="https://hashmesh.example.org:8470"))
    assert peer_url(public) == "https://hashmesh.example.org:8470"
    wildcard = dataclasses.replace(config, listen=ListenConfig("0.0.0.0", 8470))
    assert peer_url(wildcard) == "http://0.0.0.0:8470"
    assert "set federation.public_url" in capsys.readouterr().err
