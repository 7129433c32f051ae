"""``hashmesh report`` end to end: two real nodes make cases, adds, revokes, matches and
feedback; the real CLI writes the report; headless Chromium shows what a regulator sees.

Checked: the JSON's figures, that no hash, record id, case id or query appears in either
file, and in the browser the title, the totals, one SVG per plot with data, and that the page
asks for nothing beyond itself. A screenshot is left at ``$HASHMESH_SCREENSHOT_DIR/report.png``
(default: the test's tmp dir).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path

import pytest

from hashmesh.protocol.records import Target
from tests.cli_process import run_cli, run_json
from tests.federation.cluster import Cluster, eventually
from tests.node.test_status_page import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.serial

VALUES = ["a1" * 32, "b2" * 32, "c3" * 32]
PLATFORM_VALUE = "d4" * 32
QUERY = "a0" + "a1" * 31  # near VALUES[0], never stored
CASES = ["case-7f3a", "case-91bc", "case-00d2"]


async def make_history(root: Path, receipts: bool = False) -> tuple[Path, list[str]]:
    """Commission ``helpline`` and platform ``platform-x``; returns the helpline's config
    and every id that must not appear in a report."""
    cluster = Cluster(root)
    helpline, platform = cluster.make("helpline"), cluster.make("platform-x")
    cluster.link("helpline", "platform-x")
    await cluster.start()
    try:
        records = [await helpline.add(value) for value in VALUES]
        relayed = await platform.add(PLATFORM_VALUE)
        revoke = await helpline.revoke(records[2])
        for case in CASES:
            await helpline.svc.store.write(
                lambda s, c=case: s.audit("operator", "case_open", {"case_id": c}))
        await helpline.svc.store.write(
            lambda s: s.audit("operator", "case_withdraw", {"case_id": CASES[0]}))

        async def platform_has_all() -> bool:
            return (await platform.heads()).get(helpline.origin) == \
                (await helpline.heads()).get(helpline.origin)
        await eventually(platform_has_all, what="the platform to hold the helpline's log")
        feedback = []
        for ref, verdict in ((records[0], "actioned"), (records[1], "confirmed"),
                             (f"{records[1]}/0", "not_ncii")):
            record_id, _, item = ref.partition("/")
            signed = await platform.svc.feedback(
                Target(record_id, int(item) if item else None), verdict, None, "test")
            feedback.append(signed.id)

        async def helpline_has_feedback() -> bool:
            return (await helpline.heads()).get(platform.origin) == \
                (await platform.heads()).get(platform.origin)
        await eventually(helpline_has_feedback, what="the feedback to reach the helpline")
        if receipts:  # the platform's receipt for the revoke travels back (issue 12, part A)
            async def removal_receipted() -> bool:
                rows = await helpline.svc.store.read(lambda s: s.receipts_between(0, 2**62))
                return any(r.kind == "removed" for r in rows)
            await eventually(removal_receipted, what="the platform's removal receipt")
        for query in (QUERY, PLATFORM_VALUE):  # a miss (index not yet applied) is not audited
            async def matched(value: str = query) -> bool:
                return bool(await helpline.matches(value))
            await eventually(matched, what="the helpline's index to hold the hashes")
        await helpline.svc.store.flush_audit()
        secret = [*VALUES, PLATFORM_VALUE, QUERY, *CASES, *records, relayed, revoke, *feedback,
                  helpline.origin, platform.origin]
        return helpline.directory / "node.toml", secret
    finally:
        await cluster.stop()


def test_the_report_shows_aggregates_only(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    config, secret = asyncio.run(make_history(tmp_path / "nodes"))
    today = dt.datetime.now(dt.UTC).date().isoformat()
    out = tmp_path / "report"
    written = run_json("report", "--config", config, "--from", today, "--to", today,
                       "--out", out)
    assert written["period"] == {"from": today, "to": today}
    text, html = (out / "report.json").read_text(), (out / "report.html").read_text()
    for value in secret:
        assert value not in text and value not in html, value
    report = json.loads(text)
    assert report["cases"]["total_opened"] == 3 and report["cases"]["total_withdrawn"] == 1
    assert report["log"]["total_items_added"] == 3 and report["log"]["total_items_revoked"] == 1
    organisations = {o["name"]: o for o in report["organisations"]}
    assert organisations["helpline"]["matches"] == 1
    assert organisations["platform-x"] == {"name": "platform-x", "matches": 1, "actioned": 1,
                                           "confirmed": 1}
    assert report["disputes"]["by_organisation"] == [
        {"name": "platform-x", "disputed": 0, "not_ncii": 1}]
    assert report["time_to_removal"] == []  # no receipts before the receipts branch lands

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto((out / "report.html").as_uri())
        assert page.title() == f"Transparency report: helpline, {today} to {today}"
        assert page.inner_text("h1") == "Transparency report: helpline"
        assert page.inner_text("#total-cases-opened") == "3"
        assert page.inner_text("#total-cases-withdrawn") == "1"
        assert page.inner_text("#total-items-added") == "3"
        assert page.inner_text("#total-matches") == "2"
        for section in ("cases", "log", "organisations", "disputes"):
            svg = page.query_selector(f"#{section} figure svg")
            assert svg is not None and svg.bounding_box()["width"] > 300, section
        assert "Matches and actions reported per organisation" in page.text_content(
            "#organisations svg")
        assert "No removal receipts" in page.inner_text("#removal")
        assert requests == [(out / "report.html").as_uri()]  # nothing fetched from elsewhere
        shots = Path(os.environ.get("HASHMESH_SCREENSHOT_DIR", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "report.png"), full_page=True)
        browser.close()


def test_time_to_removal_per_peer_comes_from_receipts(tmp_path: Path) -> None:
    config, secret = asyncio.run(make_history(tmp_path / "nodes", receipts=True))
    today = dt.datetime.now(dt.UTC).date().isoformat()
    out = tmp_path / "report"
    run_json("report", "--config", config, "--from", today, "--to", today, "--out", out)
    report = json.loads((out / "report.json").read_text())
    [platform] = report["time_to_removal"]
    assert platform["peer"] == "platform-x" and platform["removals"] >= 1
    assert 0 <= platform["p50_s"] <= platform["p90_s"] <= platform["p99_s"] <= platform["max_s"]
    html = (out / "report.html").read_text()
    assert "Time to removal per peer (seconds)" in html
    for value in secret:
        assert value not in html


def test_bad_dates_are_named() -> None:
    refused = run_cli("report", "--from", "2026-13-01", "--to", "2026-12-31", check=False)
    assert refused.returncode == 2
    assert "--from: expected a date as YYYY-MM-DD" in refused.stderr
