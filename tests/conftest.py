"""Fixtures shared by the whole suite: real node directories, services and servers."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hashmesh.node.api.app import create_app
from hashmesh.node.cli.local import create_node_dir
from hashmesh.node.config.node import NodeConfig, load_node_config
from hashmesh.node.service import NodeService


@dataclass
class NodeDir:
    """A node directory made by the same code as ``hashmesh init``."""

    path: Path
    config_path: Path
    token: str
    origin: str

    def config(self) -> NodeConfig:
        return load_node_config(self.config_path)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def make_node_dir(tmp_path: Path) -> Callable[..., NodeDir]:
    counter = iter(range(1000))

    def make(name: str = "Test Commission", host: str = "127.0.0.1",
             port: int | None = None) -> NodeDir:
        directory = tmp_path / f"node{next(counter)}"
        config_path, token, origin = create_node_dir(
            directory, name=name, host=host, port=port or free_port(host))
        return NodeDir(directory, config_path, token, origin)

    return make


@pytest.fixture
def node_dir(make_node_dir: Callable[..., NodeDir]) -> NodeDir:
    return make_node_dir()


@pytest.fixture
async def service(node_dir: NodeDir) -> AsyncIterator[NodeService]:
    svc = await NodeService.open(node_dir.config())
    yield svc
    await svc.close()


@pytest.fixture
async def api(node_dir: NodeDir, aiohttp_client: Any) -> TestClient[Any, Any]:
    """A real aiohttp server on loopback serving a fresh node, and a client for it."""
    svc = await NodeService.open(node_dir.config())
    client: TestClient[Any, Any] = await aiohttp_client(create_app(svc))
    client.session.headers["Authorization"] = f"Bearer {node_dir.token}"
    return client


# A real PostgreSQL server (one a session) and a database a test: tests/pg.py
from tests.pg import pg_control, pg_server, pg_url  # noqa: E402, F401
