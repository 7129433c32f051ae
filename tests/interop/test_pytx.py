"""The python-threatexchange extension, driven by the real ``threatexchange`` CLI against a
real node process: fetch, match a resized photo, withdraw, fetch again, report verdicts."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from hashmesh.protocol.records import FeedbackBody, SignedRecord
from hashmesh.protocol.signing import verify_signature
from tests.cli_process import NodeProcess, run_cli, run_json
from tests.conftest import free_port

pytestmark = pytest.mark.serial
TX = str(Path(sys.executable).parent / "threatexchange")


def sample_photo(name: str, tmp_path: Path) -> Path:
    import skimage.data

    target = tmp_path / name
    target.write_bytes((Path(skimage.data.__file__).parent / name).read_bytes())
    return target


def resized(photo: Path) -> Path:
    image = Image.open(photo).convert("RGB")
    image = image.resize((image.width * 3 // 5, image.height * 3 // 5))
    target = photo.with_suffix(".resized.jpg")
    image.save(target, "JPEG", quality=70)
    return target


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    port = free_port()
    directory = tmp_path / "node"
    run_cli("init", directory, "--name", "Interop Commission", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    process = NodeProcess(directory / "node.toml", url, tmp_path / "node.log").start()
    yield directory, url
    process.stop()


def tx(home: Path, token: str, *args: str | Path, check: bool = True
       ) -> subprocess.CompletedProcess[str]:
    """The real threatexchange CLI, its config and state in ``home``."""
    env = {**os.environ, "HOME": str(home), "TX_HASHMESH_TOKEN": token}
    result = subprocess.run([TX, *map(str, args)], capture_output=True, text=True, env=env,
                            timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"threatexchange {args} exited {result.returncode}\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


REPORT_FALSE_POSITIVE = """
import sys
from threatexchange.exchanges.fetch_state import SignalOpinion, SignalOpinionCategory
from threatexchange.signal_type.pdq.signal import PdqSignal
from hashmesh.node.interop.pytx import HashmeshCollabConfig, HashmeshSignalExchangeAPI

# what HMA does with a reviewer's "not a match": the API for the collab, then report_opinion
api = HashmeshSignalExchangeAPI.for_collab(HashmeshCollabConfig(name="node", node_url=sys.argv[1]))
api.report_opinion(PdqSignal, sys.argv[2],
                   SignalOpinion(True, SignalOpinionCategory.NEGATIVE_CLASS, set()))
"""


def test_threatexchange_cli_fetches_matches_forgets_withdrawn_and_reports_back(
        node: tuple[Path, str], tmp_path: Path) -> None:
    """Three photos on the node: pytx's PDQ index of a single hash stops matching once saved
    and loaded (threatexchange 1.2.17 with faiss-cpu 1.15), so the withdrawal is checked
    with two photos left, one of which must still match."""
    directory, url = node
    photo, *others = (sample_photo(name, tmp_path)
                      for name in ("coffee.png", "chelsea.png", "astronaut.png"))
    resized_copy = resized(photo)
    config = directory / "node.toml"
    token = (directory / "cli-token").read_text().strip()
    home = tmp_path / "home"
    home.mkdir()
    added = run_json("add", "--config", config, photo, "--label", "intimate")
    record_id = added["records"][0]["id"]
    run_json("add", "--config", config, *others)

    tx(home, token, "config", "extensions", "add", "hashmesh.node.interop.pytx")
    tx(home, token, "config", "collab", "edit", "hashmesh", "node", "--create",
       "--node-url", url, "--lists", "ncii")
    tx(home, token, "fetch")
    hit = tx(home, token, "match", "photo", resized_copy)
    assert "pdq" in hit.stdout and "(node)" in hit.stdout, hit.stdout
    assert "POSITIVE_CLASS" in hit.stdout and "intimate" in hit.stdout

    # verdicts back to the node: a true positive through the CLI, a false positive as HMA
    # sends one; both become feedback records that the node signs
    pdq = next(h["value"] for h in json.loads(run_cli("hash", photo).stdout)["hashes"]
               if h["type"] == "pdq")
    (tmp_path / "pdq.txt").write_text(pdq)
    tx(home, token, "label", "--as-hash", "pdq", "node", "photo", tmp_path / "pdq.txt")
    env = {**os.environ, "HOME": str(home), "TX_HASHMESH_TOKEN": token}
    subprocess.run([sys.executable, "-c", REPORT_FALSE_POSITIVE, url, pdq], env=env,
                   check=True, timeout=60)
    origin = run_json("status", "--config", config)["origin"]
    with sqlite3.connect(directory / "data" / "hashmesh.db") as conn:
        rows = conn.execute("SELECT r.raw FROM records r WHERE r.type = 'feedback' "
                            "ORDER BY r.seq").fetchall()
    verdicts = []
    for (raw,) in rows:
        record = SignedRecord.from_bytes(bytes(raw))
        verify_signature(record)
        assert record.head.origin == origin
        assert isinstance(record.body, FeedbackBody)
        assert record.body.target.record == record_id
        verdicts.append(record.body.verdict)
    assert verdicts == ["confirmed", "not_ncii"]

    # the victim withdraws: the next fetch deletes the item, and the copy no longer matches
    run_json("revoke", "--config", config, record_id, "--reason", "withdrawn")
    tx(home, token, "fetch")
    miss = tx(home, token, "match", "photo", resized_copy, check=False)
    assert "(node)" not in miss.stdout, miss.stdout
    still = tx(home, token, "match", "photo", resized(others[0]))
    assert "(node)" in still.stdout, still.stdout
