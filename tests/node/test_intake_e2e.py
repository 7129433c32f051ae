"""The whole path of issue 13, in headless Chromium and two real nodes on loopback.

A person hashes a real photo and a generated video on node A's intake page and opens a case;
it waits for review, so node B (A's peer, a ``hashmesh run`` process) matches nothing; a
helpline approves the case (``NodeService.approve_case``); B now matches a resized
copy of the photo and the video's MD5; the person withdraws the case on the page; B stops
matching both.

Node A runs in this process (its service on a thread of its own, with the node's own apps and
listeners) so the test can call the review verbs on ``NodeService`` directly; the CLI's
``hashmesh case approve`` is tested in ``tests/node/cases/test_cli_cases.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from PIL import Image

from hashmesh.node.api.app import create_app
from hashmesh.node.api.intake import create_intake_app
from hashmesh.node.config.node import load_node_config
from hashmesh.node.service import NodeService
from tests.cli_process import NodeProcess, run_cli, run_json
from tests.conftest import free_port
from tests.node.intake_browser import (
    digests,
    sample_photos,
    screenshot_dir,
)

pytestmark = pytest.mark.serial
T = TypeVar("T")
PHOTO = next(p for p in sample_photos() if p.name == "china.jpg")


class InProcessNode:
    """A node's service, local API and intake listener on an event loop in a thread."""

    def __init__(self, config_path: Path) -> None:
        self.config = load_node_config(config_path)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: list[web.AppRunner] = []
        self.service: NodeService | None = None

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=60)

    def start(self) -> InProcessNode:
        self.thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self.service = await NodeService.open(self.config)
        intake = self.config.intake
        for app, host, port in (
                (create_app(self.service), self.config.listen.host, self.config.listen.port),
                (create_intake_app(self.service), intake.host, intake.port)):
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
            self.runners.append(runner)

    def stop(self) -> None:
        async def cleanup() -> None:
            for runner in reversed(self.runners):
                await runner.cleanup()

        self.call(cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def eventually(check: Callable[[], bool], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


@pytest.fixture
def peered(tmp_path: Path) -> Iterator[dict[str, Any]]:
    nodes: dict[str, Any] = {}
    for name in ("a", "b"):
        port = free_port()
        run_cli("init", tmp_path / name, "--name", f"Node {name.upper()}", "--port", str(port))
        config = tmp_path / name / "node.toml"
        text = config.read_text().replace("pull_interval_seconds = 30", "pull_interval_seconds = 1")
        if name == "a":
            text += (f"\n[intake]\nenabled = true\nport = {free_port()}\n"
                     "requests_per_minute = 1000\n")
        config.write_text(text)
        nodes[name] = {"config": config, "id": run_json("id", "--config", config)}
    for me, other in (("a", "b"), ("b", "a")):
        peer = nodes[other]["id"]
        run_cli("peers", "add", f"peer-{other}", "--config", nodes[me]["config"], "--url",
                peer["url"], "--node-key", peer["node_key"], "--origin", peer["origin"])
    a = InProcessNode(nodes["a"]["config"]).start()
    b = NodeProcess(nodes["b"]["config"], nodes["b"]["id"]["url"], tmp_path / "b.log").start()
    try:
        yield {"a": a, "b": nodes["b"], "intake": f"http://127.0.0.1:{a.config.intake.port}"}
    finally:
        b.stop()
        a.stop()


def matches_on_b(node: dict[str, Any], *queries: str | Path) -> bool:
    return run_cli("match", "--config", node["config"], *queries, check=False).returncode == 0


def test_open_approve_match_on_a_peer_withdraw_and_the_match_stops(
        peered: dict[str, Any], browser: Any, video: Path, tmp_path: Path) -> None:
    a: InProcessNode = peered["a"]
    assert a.service is not None
    resized = tmp_path / "china_small.jpg"
    Image.open(PHOTO).resize((320, 213)).save(resized, quality=80)
    video_md5, _ = digests(video)
    shots = screenshot_dir(tmp_path)

    page = browser.new_page()
    page.goto(peered["intake"] + "/")
    page.set_input_files("#files", [str(PHOTO), str(video)])
    page.wait_for_function("() => !document.querySelector('#send').disabled")
    page.click("#send")
    page.wait_for_selector("#done:not([hidden])")
    reference, pin = page.inner_text("#reference"), page.inner_text("#pin")

    pending = a.call(a.service.pending_cases())
    assert len(pending) == 1
    time.sleep(2)  # a few pull rounds: nothing may reach B before approval
    assert not matches_on_b(peered["b"], resized)

    a.call(a.service.approve_case(pending[0].case_id, "helpline"))
    eventually(lambda: matches_on_b(peered["b"], resized))
    assert matches_on_b(peered["b"], f"md5:{video_md5}")

    page.goto(peered["intake"] + "/withdraw")
    page.fill("#reference", reference)
    page.fill("#pin", pin)
    page.click("button[type=submit]")
    page.wait_for_selector("#result:not([hidden])")
    page.screenshot(path=str(shots / "intake-e2e-withdrawn.png"), full_page=True)
    assert page.get_attribute("#result", "data-state") == "withdrawn"
    eventually(lambda: not matches_on_b(peered["b"], resized))
    assert not matches_on_b(peered["b"], f"md5:{video_md5}")
    page.close()
