"""``hashmesh add --from LIST``: the hash-list dialects, their errors, and a real bulk add."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hashmesh.node.cli.hashlists import ReadStats, read_hash_list
from hashmesh.node.cli.support import CliError
from tests.cli_process import NodeProcess, run_cli, run_json
from tests.conftest import free_port

PDQ = ["0f" * 32, "f0" * 32, "3c" * 32]
MD5 = "ab" * 16


def _read(path: Path, default_type: str | None = None) -> list[tuple[str, str]]:
    return [(e.type, e.value) for e in read_hash_list(path, default_type)]


def test_threatexchange_dataset_csv(tmp_path: Path) -> None:
    path = tmp_path / "collab.csv"
    path.write_text("signal_type,signal_str,collab,category,tags\n"
                    f"pdq,{PDQ[0]},Sample,NCII,a b\nvideo_md5,{MD5.upper()},Sample,NCII,\n")
    assert _read(path) == [("pdq", PDQ[0]), ("md5", MD5)]


def test_stopncii_csv_skips_withdrawn_hashes(tmp_path: Path) -> None:
    path = tmp_path / "stopncii.csv"
    path.write_text("hashValue,signalType,hashStatus,lastModtimestamp\n"
                    f"{PDQ[0]},ImagePDQ,Active,1\n{PDQ[1]},ImagePDQ,Withdrawn,2\n"
                    f"{PDQ[2]},ImagePDQ,Deleted,3\n")
    stats = ReadStats()
    assert [(e.type, e.value) for e in read_hash_list(path, None, stats)] == [("pdq", PDQ[0])]
    assert stats.skipped_withdrawn == 2


def test_json_lines_of_stopncii_records_and_items(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in [
        {"signalType": "ImagePDQ", "hashValue": PDQ[0], "hashStatus": "Active",
         "caseNumbers": {}},
        {"signalType": "ImagePDQ", "hashValue": PDQ[1], "hashStatus": "Withdrawn"},
        {"type": "md5", "value": MD5},
        {"hashes": [{"type": "pdq", "value": PDQ[2]}]},
    ]) + "\n")
    assert _read(path) == [("pdq", PDQ[0]), ("md5", MD5), ("pdq", PDQ[2])]


def test_threatexchange_state_file_and_plain_lines(tmp_path: Path) -> None:
    state = tmp_path / "simple.pdq.te"
    state.write_text(f"{PDQ[0]},1,2,NCII,tag\n{PDQ[1]},3,4,NCII,\n")
    assert _read(state) == [("pdq", PDQ[0]), ("pdq", PDQ[1])]
    plain = tmp_path / "printed.txt"
    plain.write_text(f"# threatexchange dataset -P\npdq {PDQ[0]}\nmd5:{MD5}\n")
    assert _read(plain) == [("pdq", PDQ[0]), ("md5", MD5)]
    bare = tmp_path / "bare.txt"
    bare.write_text(f"{PDQ[2]}\n")
    assert _read(bare, "pdq") == [("pdq", PDQ[2])]


def test_errors_name_the_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(f"type,value\npdq,{PDQ[0]}\npdq,{PDQ[0][:-1]}\n")
    with pytest.raises(CliError, match=r"list.csv:3: value: invalid pdq hash"):
        _read(path)
    unknown = tmp_path / "u.csv"
    unknown.write_text("type,value\nsha1,abc\n")
    with pytest.raises(CliError, match=r"u.csv:2: unknown hash type 'sha1'"):
        _read(unknown)
    bare = tmp_path / "bare.txt"
    bare.write_text(f"{PDQ[0]}\n")
    with pytest.raises(CliError, match=r"bare.txt:1: expected TYPE VALUE"):
        _read(bare)


@pytest.mark.serial
def test_add_from_a_list_into_a_running_node(tmp_path: Path) -> None:
    port = free_port()
    run_cli("init", tmp_path / "n", "--port", str(port))
    config = tmp_path / "n" / "node.toml"
    values = [f"{i:064x}" for i in range(1, 2501)]
    listing = tmp_path / "list.csv"
    listing.write_text("signal_type,signal_str\n" + "".join(f"pdq,{v}\n" for v in values))
    node = NodeProcess(config, f"http://127.0.0.1:{port}", tmp_path / "node.log").start()
    try:
        added = run_json("add", "--config", config, "--from", listing, "--label", "bulk")
        assert added["added"] == 2500 and added["records"] == 10  # 256 items a record
        status = run_json("status", "--config", config)
        assert status["counts"]["hashes_active"] == 2500
        result = run_cli("match", "--config", config, f"pdq:{values[1234]}")
        assert json.loads(result.stdout)[0]["results"][0]["matches"][0]["distance"] == 0
        both = run_cli("add", "--config", config, "--from", listing, f"pdq:{values[0]}",
                       check=False)
        assert both.returncode == 2 and "not both" in both.stderr
    finally:
        node.stop()
