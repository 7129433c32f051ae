"""A real PostgreSQL server for the tests: one per test session, a fresh database per test.

The ``pgserver`` wheel (a ``test`` extra) bundles PostgreSQL's binaries and starts a server
on a Unix socket in ~2.5 s; run as root, it runs the server as a user of its own. Set
``HASHMESH_TEST_PG_URL`` to a server's URL (a user allowed to create databases) to use that
server instead.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from itertools import count
from typing import Any

import psycopg
import pytest

_databases = count()
_server: Any = None  # the pgserver handle, when this session started the server


class PgControl:
    """Stops and starts the session's server (fault tests); only for a server we started."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.socket_dir = re.search(r"host=([^&]+)", server.get_uri()).group(1)  # type: ignore[union-attr]

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                     "-l", str(self.server.log), "start")


@pytest.fixture
def pg_control(pg_server: str) -> Iterator[PgControl]:
    if _server is None:
        pytest.skip("the server is not ours to restart (HASHMESH_TEST_PG_URL)")
    control = PgControl(_server)
    yield control
    if control.server.get_pid() is None or not _is_up(pg_server):
        control.start()


def _is_up(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a running server's ``postgres`` database, for the whole session."""
    given = os.environ.get("HASHMESH_TEST_PG_URL")
    if given:
        yield given
        return
    # platformdirs warns (an error under our filterwarnings) without XDG_RUNTIME_DIR
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="hashmesh-xdg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        directory = tempfile.mkdtemp(prefix="hashmesh-pg-")
        server: Any = pgserver.get_server(directory, cleanup_mode="stop")  # type: ignore[attr-defined]
    global _server
    _server = server
    try:
        yield server.get_uri()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def database_url(server_url: str, name: str) -> str:
    """``server_url`` with its database replaced by ``name``."""
    return re.sub(r"(postgres(?:ql)?://[^/]*/)([^?]*)", rf"\g<1>{name}", server_url, count=1)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    name = f"hashmesh_test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield database_url(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
