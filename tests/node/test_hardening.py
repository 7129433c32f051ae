"""Heavy and slow requests cost a bounded amount: image bombs, concurrent images, idle sockets.

Each test here failed before its fix (measured figures in the docstrings).
"""

from __future__ import annotations

import asyncio
import io
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from hashmesh.node.matching import answers
from tests.cli_process import hashmesh_command
from tests.conftest import NodeDir
from tests.node.bombs import write_png

PEAK_SCRIPT = """
import resource, sys
from hashmesh.node.matching.hasher import ImageError, hash_image
data = open(sys.argv[1], "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    hash_image(data)
    outcome = "hashed"
except ImageError as exc:
    outcome = str(exc)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
print(outcome)
"""


def test_png_declaring_10000x10000_is_refused_before_its_pixels_are_allocated(
        tmp_path: Path) -> None:
    """A 12 KB PNG of 10000x10000 pixels took ~570 MB of peak memory to hash (measured here
    before the fix); it is now refused from its header, with a few MB of peak."""
    bomb = write_png(tmp_path / "bomb.png", 10000, 10000)
    assert bomb.stat().st_size < 16_000
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", PEAK_SCRIPT, str(bomb)],
                            capture_output=True, text=True, timeout=120, check=True)
    peak_mb, outcome = result.stdout.splitlines()
    assert "too large to decode" in outcome and "10000x10000" in outcome
    assert int(peak_mb) < 50


async def test_image_bomb_gets_a_422_that_says_why(api: Any, tmp_path: Path) -> None:
    bomb = write_png(tmp_path / "bomb.png", 10000, 10000).read_bytes()
    response = await api.post("/v1/match/image", data=bomb)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "BAD_IMAGE"
    assert "too large" in error["message"]


async def test_concurrent_images_are_decoded_at_most_two_at_a_time(
        api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the semaphore, 6 uploads at once decoded 6 images at once (6x the memory).
    The real hasher runs; the wrapper only counts how many run together."""
    running = peak = 0
    lock = threading.Lock()
    real = answers.hash_image_query

    def counted(data: bytes) -> Any:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.05)  # hold the slot long enough for the others to pile up
            return real(data)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(answers, "hash_image_query", counted)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, "PNG")
    responses = await asyncio.gather(*(api.post("/v1/match/image", data=buffer.getvalue())
                                       for _ in range(6)))
    assert [r.status for r in responses] == [200] * 6
    assert peak == answers.IMAGE_CONCURRENCY == 2


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))


@pytest.mark.serial
def test_600_idle_connections_do_not_stop_healthz(node_dir: NodeDir, tmp_path: Path) -> None:
    """On a node allowed 512 descriptors, 600 idle connections made /healthz time out before
    the fix (every accept failed with EMFILE). Now the quietest connection makes room."""
    url = f"http://127.0.0.1:{node_dir.config().listen.port}"
    log = open(tmp_path / "node.log", "wb")  # noqa: SIM115
    node = subprocess.Popen([*hashmesh_command(), "run", "--config", str(node_dir.config_path)],
                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_limit_descriptors)
    log.close()
    idle: list[socket.socket] = []
    try:
        _wait_healthy(url, node, tmp_path / "node.log")
        for _ in range(600):
            idle.append(socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])),
                                                 timeout=5))
        time.sleep(0.5)
        started = time.monotonic()
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            assert response.status == 200
        assert time.monotonic() - started < 2
        assert node.poll() is None
        closed = sum(1 for sock in idle[:200] if _closed_by_peer(sock))
        assert closed > 100  # the oldest idle ones were closed to make room
    finally:
        for sock in idle:
            sock.close()
        node.terminate()
        node.wait(timeout=15)


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def _wait_healthy(url: str, node: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise AssertionError(f"node exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"node did not start:\n{log.read_text()}")
