"""``hashmesh case``: the real CLI as subprocesses against a real node process; and what the
node keeps on disk and in its log after a case has been opened, checked and withdrawn."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_process import NodeProcess, hashmesh_command, run_cli, run_json
from tests.conftest import free_port

pytestmark = pytest.mark.serial


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    import skimage.data

    source = Path(skimage.data.__file__).parent / "coffee.png"
    target = tmp_path / "photo.png"
    target.write_bytes(source.read_bytes())
    return target


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, NodeProcess]]:
    port = free_port()
    directory = tmp_path / "node"
    run_cli("init", directory, "--name", "Case Commission", "--port", str(port))
    config = directory / "node.toml"
    config.write_text(config.read_text() + "\n[cases]\npin_attempts = 3\n")
    node = NodeProcess(config, f"http://127.0.0.1:{port}", tmp_path / "node.log").start()
    yield config, node
    node.stop()


def with_pin(*args: str | Path, pin: str) -> subprocess.CompletedProcess[str]:
    """A CLI command that reads the PIN from standard input, as ``--pin-stdin`` says."""
    return subprocess.run([*hashmesh_command(), *map(str, args), "--pin-stdin"],
                          input=pin + "\n", capture_output=True, text=True, timeout=60)


def wrong(pin: str) -> str:
    return "00000000" if pin != "00000000" else "11111111"


def test_open_check_and_withdraw_a_case_with_the_cli(running: tuple[Path, NodeProcess],
                                                      photo: Path) -> None:
    config, _ = running
    shown = run_cli("case", "open", "--config", config, "pdq:" + "f0" * 32).stdout
    assert "Reference:" in shown and "PIN:" in shown and "shown only now" in shown
    opened = run_json("case", "open", "--config", config, photo, "pdq:" + "ab" * 32, "--json")
    assert opened["state"] == "open" and len(opened["records"]) == 1
    reference, pin = opened["reference"], opened["pin"]

    status = with_pin("case", "status", reference, "--config", config, pin=pin)
    assert status.returncode == 0, status.stderr
    assert "with 2 items; signed and shared" in status.stdout
    as_json = json.loads(with_pin("case", "status", reference, "--config", config, "--json",
                                  pin=pin).stdout)
    assert as_json["state"] == "open" and as_json["words"][0].startswith("Opened ")

    refused = with_pin("case", "status", reference, "--config", config, pin=wrong(pin))
    assert refused.returncode == 2
    assert "CASE_ACCESS_DENIED" in refused.stderr and reference not in refused.stderr

    withdrawn = with_pin("case", "withdraw", reference, "--config", config, pin=pin)
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert withdrawn.stdout.splitlines()[-1].startswith("Withdrawn ")
    [other] = run_json("match", "--config", config, "pdq:" + "f0" * 32)
    assert other["verdict"] == "match"  # the other case is still in force
    matched = run_cli("match", "--config", config, photo, "pdq:" + "ab" * 32, check=False)
    assert matched.returncode == 1
    assert [entry["verdict"] for entry in json.loads(matched.stdout)] == ["none", "none"]


def test_review_queue_with_the_cli(running: tuple[Path, NodeProcess]) -> None:
    config, _ = running
    held = run_json("case", "open", "--config", config, "pdq:" + "cd" * 32, "--review",
                    "--json")
    assert held["state"] == "pending_review" and held["records"] == []
    [pending] = run_json("case", "pending", "--config", config)["cases"]
    approved = run_json("case", "approve", pending["case_id"], "--config", config)
    assert approved["state"] == "open" and len(approved["records"]) == 1
    again = run_cli("case", "approve", pending["case_id"], "--config", config, check=False)
    assert again.returncode == 2 and "CASE_STATE" in again.stderr

    run_json("case", "open", "--config", config, "pdq:" + "ef" * 32, "--review", "--json")
    [other] = run_json("case", "pending", "--config", config)["cases"]
    assert run_json("case", "reject", other["case_id"], "--config", config)["state"] == \
        "rejected"
    assert run_json("case", "pending", "--config", config)["cases"] == []
    bad = run_cli("case", "reject", "7KQ2-M9XD-4HTR-B3ZP", "--config", config, check=False)
    assert bad.returncode == 2 and "not a case reference" in bad.stderr


def test_wrong_pins_lock_the_case_across_a_restart(running: tuple[Path, NodeProcess]) -> None:
    config, node = running
    opened = run_json("case", "open", "--config", config, "pdq:" + "12" * 32, "--json")
    reference, pin = opened["reference"], opened["pin"]
    for _ in range(3):
        assert "CASE_ACCESS_DENIED" in with_pin("case", "status", reference, "--config",
                                                config, pin=wrong(pin)).stderr
    locked = with_pin("case", "status", reference, "--config", config, pin=pin)
    assert locked.returncode == 2 and "CASE_LOCKED" in locked.stderr
    assert "try again in 15 minutes" in locked.stderr

    node.kill9()
    node.start()
    after = with_pin("case", "withdraw", reference, "--config", config, pin=pin)
    assert after.returncode == 2 and "CASE_LOCKED" in after.stderr


def test_no_reference_or_pin_on_disk_or_in_the_log(running: tuple[Path, NodeProcess],
                                                   photo: Path, tmp_path: Path) -> None:
    """The privacy promise: after a case is opened, checked (rightly and wrongly) and
    withdrawn, neither its reference nor its PIN is in any file of the data directory (the
    database, its WAL, the secret) nor in the node's log, written at DEBUG level; the HMAC
    of the reference and the argon2id hash of the PIN are."""
    config, node = running
    node.stop()
    node.extra_args = ("--log-level", "DEBUG")
    node.start()
    opened = run_json("case", "open", "--config", config, photo, "--json")
    reference, pin = opened["reference"], opened["pin"]
    held = run_json("case", "open", "--config", config, "pdq:" + "34" * 32, "--review",
                    "--json")
    for secret_pair in ((reference, pin), (held["reference"], held["pin"])):
        assert with_pin("case", "status", secret_pair[0], "--config", config,
                        pin=secret_pair[1]).returncode == 0
    with_pin("case", "status", reference, "--config", config, pin=wrong(pin))
    assert with_pin("case", "withdraw", reference, "--config", config, pin=pin).returncode == 0

    data_dir = config.parent / "data"
    forbidden = {reference, reference.replace("-", ""), pin, held["reference"],
                 held["reference"].replace("-", ""), held["pin"]}

    def leaks() -> dict[str, list[str]]:
        found = {}
        files = [p for p in data_dir.rglob("*") if p.is_file()] + [node.log_path]
        for path in files:
            data = path.read_bytes()
            hits = [value for value in forbidden if value.encode() in data]
            if hits:
                found[str(path)] = hits
        return found

    wal = data_dir / "hashmesh.db-wal"
    assert wal.exists() and wal.stat().st_size > 0  # looked at while the node runs
    assert leaks() == {}
    node.stop()
    assert leaks() == {}
    # what is kept instead: the HMAC of the reference, and the PIN's argon2id hash
    import sqlite3
    conn = sqlite3.connect(data_dir / "hashmesh.db")
    try:
        rows = conn.execute("SELECT ref_mac, pin_hash FROM cases").fetchall()
    finally:
        conn.close()
    assert len(rows) == 2 and all(len(mac) == 64 and pin_hash.startswith("$argon2id$")
                                  for mac, pin_hash in rows)
    log = node.log_path.read_text()
    assert "signed revoke" in log and "DEBUG" in log  # the log was written, and in detail
