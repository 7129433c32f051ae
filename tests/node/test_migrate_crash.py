"""``hashmesh migrate`` killed at any point leaves a database under its name (issue 18).

The swap used to be two renames (old file away, new file in): a crash between them left no
``hashmesh.db``, and the next ``hashmesh run`` made an empty one. Each filesystem step of the
swap is crashed after in turn (``os._exit`` in a child process: no cleanup runs, as with
``kill -9``), and the real CLI is killed with SIGKILL at random moments.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hashmesh.node.store.migrate import schema_version
from tests.cli_process import hashmesh_command, run_cli
from tests.conftest import NodeDir
from tests.node.test_migrate import downgrade_to_v1, dump, fill

CRASH_AFTER = """
import os, sys
from pathlib import Path
from typing import Any
from hashmesh.node.store import migrate
steps = 0
def crashing(real):
    def step(*args, **kwargs):
        global steps
        result = real(*args, **kwargs)
        steps += 1
        if steps == int(sys.argv[2]):
            os._exit(9)
        return result
    return step
for name in ("replace", "rename", "link", "unlink"):
    setattr(os, name, crashing(getattr(os, name)))
migrate.migrate_v1(Path(sys.argv[1]))
print("finished")
"""


def _same_rows(after: dict[str, list[tuple[Any, ...]]],
               before: dict[str, list[tuple[Any, ...]]]) -> bool:
    """Every table row for row, but the change log: a v1 database had none, so migrate
    rebuilds it (same changes, other seqs and times; see test_migrate.py)."""
    def changes(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return sorted(r[1:5] for r in rows)

    rest = {t: rows for t, rows in after.items() if t != "changes"}
    return (rest == {t: rows for t, rows in before.items() if t != "changes"}
            and changes(after.get("changes", [])) == changes(before.get("changes", [])))


def _holds_everything(path: Path, before: dict[str, list[tuple[Any, ...]]]) -> None:
    """A database is at ``path``: the old one (then ``migrate`` can run again) or the new."""
    assert path.exists(), "no database under its name after the crash"
    version = schema_version(path)
    assert version in (1, 2)
    if version == 2:
        assert _same_rows(dump(path), before)
    else:
        assert len(dump(path)["records"]) == len(before["records"])


async def test_a_crash_at_any_step_of_the_swap_leaves_a_database(node_dir: NodeDir) -> None:
    path = await fill(node_dir)
    before = dump(path)
    downgrade_to_v1(path)
    pristine = path.with_name("pristine-v1.db")
    shutil.copy(path, pristine)
    step = 1
    while True:
        result = subprocess.run([sys.executable, "-c", CRASH_AFTER, str(path), str(step)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode in (0, 9), result.stderr
        _holds_everything(path, before)
        if result.returncode == 0:
            break
        for leftover in path.parent.glob("hashmesh.db*"):
            leftover.unlink()
        shutil.copy(pristine, path)
        step += 1
    assert step >= 3  # the crash points were really reached
    assert _same_rows(dump(path), before)


@pytest.mark.serial
async def test_kill_9_during_hashmesh_migrate_loses_nothing(node_dir: NodeDir) -> None:
    path = await fill(node_dir)
    before = dump(path)
    downgrade_to_v1(path)
    pristine = path.with_name("pristine-v1.db")
    shutil.copy(path, pristine)
    rng = random.Random(18)
    for _ in range(4):
        process = subprocess.Popen([*hashmesh_command(), "migrate", "--config",
                                    str(node_dir.config_path)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 0.9))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        _holds_everything(path, before)
        if schema_version(path) == 1:
            backup = path.with_name(path.name + ".v1-backup")
            if backup.exists():  # killed after the backup link: migrate says to move it away
                os.unlink(backup)
            run_cli("migrate", "--config", node_dir.config_path)
        assert _same_rows(dump(path), before)
        assert run_cli("verify", "--config", node_dir.config_path).returncode == 0
        for leftover in path.parent.glob("hashmesh.db*"):
            leftover.unlink()
        shutil.copy(pristine, path)

