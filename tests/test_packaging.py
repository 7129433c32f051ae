"""The wheel installs all under ``hashmesh`` and coexists with owners of ``node``, ``protocol``.

The repository keeps its top-level ``node/`` and ``protocol/`` folders; installed, they are
``hashmesh.node`` and ``hashmesh.protocol``. Unrelated distributions on the package index own
top-level modules named ``node`` and ``protocol``: this test builds our wheel with
``pip wheel .``, installs it into a fresh venv beside a stand-in distribution that owns both
names, and runs the real console script there.

The fresh venv sees this venv's third-party packages through a ``.pth`` line (so nothing is
downloaded but the build backend), but not this checkout: the editable install's import hook
lives in a ``.pth`` file of this venv's own site directory, which a path added by ``.pth`` does
not process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import skimage

ROOT = Path(__file__).resolve().parents[1]
PHOTO = Path(skimage.__file__).parent / "data" / "chelsea.png"

pytestmark = [pytest.mark.serial, pytest.mark.slow]


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                            timeout=300, env=env, check=False)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def make_squatter(directory: Path) -> Path:
    """A distribution that owns top-level ``node`` and ``protocol``, as unrelated ones do."""
    directory.mkdir()
    (directory / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "squatter"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["node", "protocol"]\n')
    for name in ("node", "protocol"):
        (directory / name).mkdir()
        (directory / name / "__init__.py").write_text(f"OWNER = 'squatter {name}'\n")
    return directory


def test_wheel_installs_under_hashmesh_beside_owners_of_node_and_protocol(
        tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT,
        make_squatter(tmp_path / "squatter"))
    ours = next(wheels.glob("hashmesh-*.whl"))

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
                    ).stdout.strip())
    (site / "third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "-q", *wheels.glob("*.whl"))

    top_level = sorted(p.name for p in site.iterdir() if not p.name.endswith(".pth"))
    assert "hashmesh" in top_level and "node" in top_level and "protocol" in top_level
    files = run(python, "-m", "pip", "show", "-f", "hashmesh").stdout
    assert "hashmesh/node/cli/main.py" in files and "hashmesh/protocol/SPEC.md" in files
    assert "\n  node/" not in files and "\n  protocol/" not in files, ours.name

    outside = tmp_path / "elsewhere"  # not the checkout: nothing can come from its folders
    outside.mkdir()
    both = run(python, "-c", "import node, protocol, hashmesh.node, hashmesh.protocol.records;"
               "print(node.OWNER, '|', protocol.OWNER, '|', hashmesh.node.__file__)",
               cwd=outside).stdout
    assert both.startswith("squatter node | squatter protocol | ")
    assert str(site) in both and str(ROOT) not in both

    script = venv / "bin" / "hashmesh"
    assert "hash" in run(script, "--help", cwd=outside).stdout
    hashed = json.loads(run(script, "hash", "--no-progress", PHOTO, cwd=outside).stdout)
    values = {h["type"]: h["value"] for h in hashed["hashes"]}
    assert len(values["pdq"]) == 64 and len(values["sha256"]) == 64
