"""The status page, driven in headless Chromium against real node processes on loopback.

Two nodes peer with each other and a third peer is configured that never answers, so the
page has an up peer, a down peer with its error, two origins and audit entries to show;
then a bad peers.toml edit is refused, and the page, /v1/status and /metrics say so.
The test compares what the page shows with the node's own API, checks the CSP header, and
that a wrong token and a form without its CSRF token are refused. It leaves a screenshot at
``$HASHMESH_SCREENSHOT_DIR/status.png`` (default: the test's tmp dir).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hashmesh.protocol.keys import SigningKey
from tests.cli_process import NodeProcess, run_cli, run_json
from tests.conftest import free_port

pytestmark = pytest.mark.serial

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def api(url: str, token: str, path: str) -> Any:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read().decode()
    return json.loads(body) if path.startswith("/v1/") else body


def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[dict[str, Any]]:
    nodes: dict[str, Any] = {}
    for name, title in (("a", "Commission A"), ("b", "Helpline B")):
        port = free_port()
        run_cli("init", tmp_path / name, "--name", title, "--port", str(port))
        config = tmp_path / name / "node.toml"
        nodes[name] = {"config": config, "url": f"http://127.0.0.1:{port}",
                       "token": (tmp_path / name / "cli-token").read_text().strip(),
                       "id": run_json("id", "--config", config)}
    for me, other in (("a", "b"), ("b", "a")):
        peer = nodes[other]["id"]
        run_cli("peers", "add", f"peer-{other}", "--config", nodes[me]["config"], "--url",
                peer["url"], "--node-key", peer["node_key"], "--origin", peer["origin"])
    ghost = SigningKey.generate().id
    run_cli("peers", "add", "ghost", "--config", nodes["a"]["config"], "--url",
            f"http://127.0.0.1:{free_port()}", "--node-key", ghost, "--origin", ghost)
    # a watches b's origin, with a witness that never cosigns: its "stale" alarm (SPEC §20.5)
    # is on the page within a second or two
    config_a = nodes["a"]["config"]
    config_a.write_text(config_a.read_text() + "\n[checkpoints]\nmax_age_seconds = 1\n"
                        "[checkpoints.witnesses]\n"
                        f'"{nodes["b"]["id"]["origin"]}" = ["{ghost}"]\n')
    processes = []
    try:
        for name in ("a", "b"):
            process = NodeProcess(nodes[name]["config"], nodes[name]["url"],
                                  tmp_path / f"{name}.log").start()
            processes.append(process)
        yield nodes
    finally:
        for process in processes:
            process.stop()


def test_status_page_shows_the_nodes_real_state(two_nodes: dict[str, Any],
                                                tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    a, b = two_nodes["a"], two_nodes["b"]
    value = "f" * 32 + "0" * 32
    run_cli("add", "--config", b["config"], f"pdq:{value}")
    run_cli("add", "--config", a["config"], f"md5:{'ab' * 16}")
    run_cli("match", "--config", a["config"], f"md5:{'ab' * 16}", check=False)
    b_origin = b["id"]["origin"]
    eventually(lambda: api(a["url"], a["token"], "/v1/status")["counts"]["origins"] == 2)

    def receipts_both_ways() -> bool:  # each node receipts the other's add (SPEC §21)
        status = api(a["url"], a["token"], "/v1/status")
        figures = {n["origin"]: n for n in status["receipts"]["nodes"]}
        return (b_origin in figures and figures[b_origin]["time_to_active"] is not None
                and status["head"]["seq"] == 3)

    eventually(receipts_both_ways, timeout=40)
    peers_file = a["config"].parent / "peers.toml"
    good_peers = peers_file.read_text()
    peers_file.write_text(good_peers + "\n[[peer]]\nname = \"Bad Name!\"\n")
    eventually(lambda: api(a["url"], a["token"], "/v1/status")["peers_config"]["refused"])
    status = api(a["url"], a["token"], "/v1/status")
    assert "peer" in status["peers_config"]["reason"]
    assert "hashmesh_peers_config_refused 1.0" in api(a["url"], a["token"], "/metrics")
    eventually(lambda: [x["kind"] for x in api(a["url"], a["token"], "/v1/status")[
        "checkpoints"]["alarms"]] == ["stale"])
    eventually(lambda: "ghost" in (a["config"].parent.parent / "a.log").read_text()
               and "failed" in (a["config"].parent.parent / "a.log").read_text())

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        response = page.goto(a["url"] + "/ui/")
        assert response is not None and page.url.endswith("/ui/login")
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert "nothing" not in (response.headers.get("x-frame-options") or "nothing")

        page.fill("#token", "hm_wrong")
        with page.expect_response(lambda r: r.url.endswith("/ui/login")) as refused:
            page.click("button[type=submit]")
        assert refused.value.status == 401
        assert "Unknown token" in page.inner_text(".error")

        page.fill("#token", a["token"])
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/")
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["hm_session"]["httpOnly"] and cookies["hm_session"]["sameSite"] == "Strict"

        status = api(a["url"], a["token"], "/v1/status")
        counts = {el.get_attribute("data-count"): el.inner_text().split("\n")[0]
                  for el in page.query_selector_all("[data-count]")}
        assert counts["records"] == f"{status['counts']['records']:,}"
        assert counts["hashes_active"] == f"{status['counts']['hashes_active']:,}"
        assert counts["match_rate"] == "100.0 %"
        assert page.inner_text("#origin") == status["origin"]

        states = {row.get_attribute("data-peer"): row.query_selector("[data-state]")
                  .get_attribute("data-state") for row in page.query_selector_all("[data-peer]")}
        assert states == {"peer-b": "up", "ghost": "down"}
        ghost_row = page.inner_text("[data-peer=ghost]")
        assert "failed round" in ghost_row and "ClientConnectorError" in ghost_row
        assert "never" in ghost_row, "the ghost peer was never pulled"
        ghost = status["peer_sync"]["ghost"]
        assert ghost["state"] == "down" and ghost["last_pull"] is None
        assert ghost["failures"] >= 1 and "Cannot connect" in ghost["last_error"]["message"]
        if ghost["backoff_seconds"] is not None:  # between two tries as the page was read
            assert "next try in" in ghost_row
        peer_b = status["peer_sync"]["peer-b"]
        assert peer_b["state"] == "up" and peer_b["failures"] == 0
        assert peer_b["last_pull"] is not None and peer_b["pull_lag_seconds"] >= 0
        lag = page.get_attribute("[data-peer=peer-b] [data-lag]", "data-lag")
        assert lag is not None and 0 <= float(lag) < 60, "pulled within the pull interval"
        assert "UTC" in page.inner_text("[data-peer=peer-b] [data-lag]")

        evidence = api(a["url"], a["token"], "/v1/evidence")["evidence"]
        assert evidence == []
        for origin in (status["origin"], b_origin):
            seq = page.get_attribute(f"[data-origin='{origin}'] [data-seq]", "data-seq")
            assert seq == "3"  # init's key record, one add, the receipt of the other's add
        [figures] = [n for n in status["receipts"]["nodes"] if n["origin"] == b_origin]
        active = page.inner_text(f"[data-node='{b_origin}'] [data-kind=time_to_active]")
        assert active.startswith(f"{figures['time_to_active']['p50']:.2f} s /")
        assert "(1)" in active
        assert "no receipts" in page.inner_text(
            f"[data-node='{b_origin}'] [data-kind=time_to_removal]")
        assert "peers.toml was not reloaded" in page.inner_text("#peers-config-refused")
        stale = page.inner_text("[data-checkpoint-alarm=stale]")
        assert "Checkpoints stale" in stale and "peer-b" in stale
        assert "no witnessed checkpoint" in stale
        actions = [row.get_attribute("data-action") for row in
                   page.query_selector_all("[data-action]")]
        assert "sign_add" in actions

        shots = Path(os.environ.get("HASHMESH_SCREENSHOT_DIR", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "status.png"), full_page=True)

        css = page.request.get(a["url"] + "/ui/static/page.css")
        assert css.ok and css.headers["content-type"].startswith("text/css")
        page.click(".logout button")
        page.wait_for_url("**/ui/login")
        browser.close()
    if shots != tmp_path:
        shutil.copy(shots / "status.png", tmp_path / "status.png")


def test_login_form_without_csrf_is_refused(two_nodes: dict[str, Any]) -> None:
    a = two_nodes["a"]
    body = urllib.parse.urlencode({"token": a["token"]}).encode()
    request = urllib.request.Request(a["url"] + "/ui/login", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    with refused.value:
        assert refused.value.code == 403
        assert "hm_session" not in (refused.value.headers.get("Set-Cookie") or "")


def test_the_page_marks_a_name_that_only_its_origin_vouches_for(
        two_nodes: dict[str, Any], tmp_path: Path) -> None:
    """B signs a profile with the real CLI; A, once its peers.toml no longer pins B's origin,
    names B's log by that profile and marks it self-declared (screenshot: profile.png)."""
    from playwright.sync_api import sync_playwright

    a, b = two_nodes["a"], two_nodes["b"]
    signed = run_json("profile", "set", "--config", b["config"], "--name", "Helpline Bé",
                      "--jurisdiction", "DE", "--contact", "help@b.example")
    assert signed["profile"] == {"name": "Helpline Bé", "jurisdiction": "DE",
                                 "contact": "help@b.example"}
    refused = run_cli("profile", "set", "--config", b["config"], "--name", "Bad\u202ename",
                      check=False)
    assert refused.returncode != 0 and "name" in refused.stderr
    b_origin = b["id"]["origin"]
    run_cli("peers", "remove", "peer-b", "--config", a["config"])
    run_cli("peers", "add", "peer-b", "--config", a["config"], "--url", b["url"],
            "--node-key", b["id"]["node_key"], "--accept-origin", b_origin)

    def a_names_b() -> bool:
        try:
            shown = api(a["url"], a["token"], f"/v1/records/{signed['id']}")
        except urllib.error.HTTPError:
            return False
        return bool(shown["origin_name"] == "Helpline Bé")

    eventually(a_names_b, timeout=40)
    shown = api(a["url"], a["token"], f"/v1/records/{signed['id']}")
    assert shown["origin_profile"]["self_declared"] is True

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(a["url"] + "/ui/")
        page.fill("#token", a["token"])
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/")
        row = f"[data-origin='{b_origin}']"
        assert page.inner_text(f"{row} [data-name]") == "Helpline Bé"
        assert page.query_selector(f"{row} [data-self-declared]") is not None
        assert page.inner_text(f"{row} [data-declared]") == "DE · help@b.example"
        own = f"[data-origin='{a['id']['origin']}']"
        assert page.inner_text(f"{own} [data-name]") == "Commission A"
        assert page.query_selector(f"{own} [data-self-declared]") is None
        shots = Path(os.environ.get("HASHMESH_SCREENSHOT_DIR", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.locator("#origins").screenshot(path=str(shots / "profile.png"))
        browser.close()
