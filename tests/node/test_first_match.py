"""The first match after a fresh install answers at once, while the kernel compiles.

On a fresh install numba compiles the match kernel at the first start (16-28 s measured);
the first match used to wait for it. Now queries scan with numpy while it compiles.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from hashmesh.node.matching import matcher as matcher_module
from hashmesh.node.matching.matcher import HammingIndex
from tests.cli_process import hashmesh_command, run_cli
from tests.conftest import free_port


def test_numpy_scan_answers_as_the_kernel_does() -> None:
    rng = np.random.default_rng(3)
    index = HammingIndex(256, 31)
    packed = rng.integers(0, 2**63, size=(5000, 4), dtype=np.int64).tobytes()
    index.bulk_load(np.arange(10, 5010, dtype=np.int64), packed)
    for entry in range(10, 60):
        index.remove(entry)
    queries = [packed[i * 32:(i + 1) * 32] for i in range(0, 200, 7)]
    noisy = [bytes(b ^ (1 if k % 5 == 0 else 0) for k, b in enumerate(q)) for q in queries]
    kernel = index.query_many(queries + noisy, 31)
    matcher_module._WARMING.set()
    try:
        scanned = index.query_many(queries + noisy, 31)
    finally:
        matcher_module._WARMING.clear()
    for (k_ids, k_dist), (s_ids, s_dist) in zip(kernel, scanned, strict=True):
        assert k_ids.tolist() == s_ids.tolist()
        assert k_dist.tolist() == s_dist.tolist()


@pytest.mark.serial
def test_first_match_after_a_fresh_install_answers_within_3_s(tmp_path: Path) -> None:
    """A fresh install is an empty numba cache (NUMBA_CACHE_DIR)."""
    port = free_port()
    run_cli("init", tmp_path / "n", "--port", str(port))
    config = tmp_path / "n" / "node.toml"
    token = (tmp_path / "n" / "cli-token").read_text().strip()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "node.log", "wb")  # noqa: SIM115
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    node = subprocess.Popen([*hashmesh_command(), "run", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    value = "3c" * 32
    try:
        started = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                assert node.poll() is None and time.monotonic() - started < 30
                time.sleep(0.05)
        _call(url, token, "/v1/records", {"items": [{"hashes": [{"type": "pdq",
                                                                "value": value}]}]})
        asked = time.monotonic()
        answer = _call(url, token, "/v1/match", {"hashes": [{"type": "pdq", "value": value}]})
        took = time.monotonic() - asked
        assert answer["results"][0]["matches"][0]["distance"] == 0
        assert took < 3, f"first match took {took:.1f} s"
    finally:
        node.terminate()
        node.wait(timeout=60)


def _call(url: str, token: str, path: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        result: dict[str, object] = json.loads(response.read())
        return result
