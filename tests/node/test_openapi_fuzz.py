"""The OpenAPI document against a running node, with a property-based fuzzer (schemathesis):
for inputs the document allows (positive) and forbids (negative), on every route, the node
never answers 5xx, and answers only with statuses the document lists. Bounded: a few examples
per route and mode (~20 s).
"""

from __future__ import annotations

import json
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import NodeProcess, run_cli
from tests.conftest import free_port

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

pytestmark = pytest.mark.serial

EXAMPLES = 15
calls: list[tuple[str, int]] = []


def documented(operation: Any) -> set[str]:
    return set(operation.definition.raw.get("responses", {}))


def test_no_input_gets_a_500_or_an_undocumented_status(tmp_path: Path) -> None:
    from schemathesis import GenerationMode
    from schemathesis.openapi import from_dict

    port = free_port()
    directory = tmp_path / "node"
    run_cli("init", directory, "--port", str(port))
    config = directory / "node.toml"
    token = (directory / "cli-token").read_text().strip()
    url = f"http://127.0.0.1:{port}"
    node = NodeProcess(config, url, tmp_path / "node.log").start()
    try:
        with urllib.request.urlopen(url + "/v1/openapi.json", timeout=10) as response:
            document = json.loads(response.read())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            schema = from_dict(document)
        failures: list[str] = []
        calls.clear()
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        assert len(operations) == len([m for ops in document["paths"].values() for m in ops])
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failures += _fuzz(operation, mode, url, token)
        assert not failures, "\n".join(failures[:20])
        assert len(calls) > 10 * len(operations), len(calls)  # it really ran
        statuses = {status for _, status in calls}
        assert {200, 400, 404}.issubset(statuses), statuses
        checked = run_cli("verify", "--index", "--config", config, check=False)
        assert checked.returncode == 0, checked.stdout
    finally:
        node.stop()
    assert "Traceback" not in (tmp_path / "node.log").read_text()


def _fuzz(operation: Any, mode: Any, url: str, token: str) -> list[str]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    failures: list[str] = []
    allowed = documented(operation)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30)
        except Exception as exc:  # e.g. a header the HTTP client refuses to send
            if "header" in str(exc).lower() or "Invalid" in str(exc):
                return
            raise
        status = response.status_code
        calls.append((operation.label, status))
        where = f"{operation.label} [{mode.value}] {case.query or ''} -> {status}"
        if status >= 500:
            failures.append(f"{where}: {response.text[:300]}")
        elif str(status) not in allowed:
            failures.append(f"{where} not documented ({sorted(allowed)}): "
                            f"{response.text[:200]}")

    try:
        run()
    except Unsatisfiable:  # nothing to get wrong: a route without parameters or body
        assert mode.value == "negative"
    return failures
