"""``protocol/`` is the pure wire format: no node code, no web server, no database, no I/O.

Another implementation (or a small verifier tool) must be able to use it alone, and nothing in
it may touch files or the network, so that what it accepts depends only on its input bytes.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hashmesh.protocol

PROTOCOL_DIR = Path(hashmesh.protocol.__file__).parent
MODULES = sorted(p for p in PROTOCOL_DIR.glob("*.py"))
FORBIDDEN_IMPORTS = {"node", "aiohttp", "sqlite3", "sqlite_utils", "pathlib", "os", "io",
                     "shutil", "tempfile", "socket", "subprocess", "asyncio", "urllib", "http",
                     "requests", "logging"}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}


def test_every_protocol_module_imports_with_node_aiohttp_and_sqlite_unavailable() -> None:
    names = [f"hashmesh.protocol.{p.stem}" for p in MODULES if p.stem != "__init__"]
    poisoned = ["aiohttp", "sqlite3", "sqlite_utils", "hashmesh.node", "_sqlite3"]
    script = (
        "import sys\n"
        f"for name in {poisoned!r}:\n"
        "    sys.modules[name] = None  # any import of it now raises ImportError\n"
        f"for name in {names!r}:\n"
        "    __import__(name)\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('hashmesh.protocol.'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=PROTOCOL_DIR.parent, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == set(names)


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_protocol_module_has_no_io_imports_or_calls(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    bad = [f"{path.name}:{line}: import {name}" for line, name in _imports(tree)
           if name.split(".")[0] in FORBIDDEN_IMPORTS or name.startswith("hashmesh.node")]
    bad += [f"{path.name}:{node.lineno}: {node.func.id}()" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS]
    assert bad == []


def test_the_static_check_catches_io() -> None:
    sample = "import os\nfrom hashmesh.node.store import sqlite\nopen('x')\nprint(1)\n"
    tree = ast.parse(sample)
    assert [name for _, name in _imports(tree)] == ["os", "hashmesh.node.store"]
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name)]
    assert set(calls) <= FORBIDDEN_CALLS and len(calls) == 2
