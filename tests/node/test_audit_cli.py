"""``hashmesh audit`` end to end: a real node with two match worker processes writes audit
rows from three processes at once; the export through the API (scope ``audit``) checks
offline, a tampered export is refused naming its line, and match rows hold no query hash."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hashmesh.node.config.node import hash_token
from hashmesh.node.store.audit_chain import head_message
from hashmesh.protocol.keys import PublicKey, b64url_decode
from tests.cli_process import run_cli
from tests.node.test_cli_match_workers import NEAR, VALUE, Node, wait_for

pytestmark = pytest.mark.serial


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = Node(tmp_path)
    with started.config.open("a") as config:  # a token that may match but not read the audit
        config.write(f'\n[[api.tokens]]\nname = "platform"\nsha256 = "{hash_token("p" * 32)}"\n'
                     'scopes = ["read"]\n')
    started.process.start(timeout=60)
    yield started
    started.process.stop()


def test_audit_export_verifies_and_a_tampered_line_is_named(node: Node, tmp_path: Path) -> None:
    config = str(node.config)
    run_cli("add", "--config", config, f"pdq:{VALUE}")
    wait_for(lambda: node.matched(NEAR), what="the workers to see the add")

    hits = [1]  # the match that saw the add; only a match with a hit is audited

    def match_many() -> None:
        for _ in range(15):
            if node.matched(NEAR):  # a miss here is the worker defect named in
                hits.append(1)      # test_cli_match_workers.py (xfail), not audited

    threads = [threading.Thread(target=match_many) for _ in range(3)]
    for thread in threads:
        thread.start()
    for n in range(5):  # the node signs (and audits) while the workers audit matches
        run_cli("add", "--config", config, f"pdq:{n:064x}")
    for thread in threads:
        thread.join()

    def all_matches_audited() -> bool:
        _, page = node.call(node.url + "/v1/audit?last=5000")
        return sum(r["action"] == "match" for r in page["rows"]) >= len(hits)
    wait_for(all_matches_audited, what="the workers' audit rows")

    export = tmp_path / "audit.jsonl"
    exported = json.loads(run_cli("audit", "--config", config, "--export", export).stdout)
    lines = export.read_text().splitlines()
    assert exported["exported"] == len(lines) >= len(hits) + 6
    rows = [json.loads(line) for line in lines]
    matches = [r for r in rows if r["action"] == "match"]
    assert {r["actor"] for r in matches} == {f"token:{'local'}"}
    for row in matches:  # counts and matched records, never the query
        assert set(row["detail"]) == {"queries", "matched_records", "origins"}
        assert NEAR not in json.dumps(row)

    verified = run_cli("audit", "--verify", export)
    assert "chain intact" in verified.stdout

    head = exported["head"]  # signed by the node key, as `hashmesh id` shows it
    node_key = json.loads(run_cli("id", "--config", config).stdout)["node_key"]
    statement = {k: head[k] for k in ("node_key", "id", "hash", "at")}
    assert statement["node_key"] == node_key and head["hash"] == rows[-1]["hash"]
    signature = b64url_decode(head["signature"], length=64, what="signature", path="head")
    assert PublicKey.from_id(node_key).verify(head_message(statement), signature)

    tampered = tmp_path / "tampered.jsonl"
    edited = lines.copy()
    edited[10] = edited[10].replace('"actor":"', '"actor":"x', 1)
    tampered.write_text("\n".join(edited) + "\n")
    refused = run_cli("audit", "--verify", tampered, check=False)
    assert refused.returncode == 1
    assert f"{tampered}:11:" in refused.stdout

    shown = run_cli("audit", "--config", config, "--last", "3").stdout.splitlines()
    assert len(shown) == 4 and shown[-1].startswith(f"head: row {rows[-1]['id']}")


def test_the_audit_needs_its_own_scope(node: Node) -> None:
    node.token = "p" * 32
    status, answer = node.call(node.url + "/v1/audit")
    assert status == 403 and "'audit' scope" in answer["error"]["message"]
    status, _ = node.call(node.url + "/v1/status")
    assert status == 200
