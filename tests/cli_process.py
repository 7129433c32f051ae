"""Running the real ``hashmesh`` CLI as subprocesses, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


def hashmesh_command() -> list[str]:
    """The installed console script, or the module if the script is not on this venv."""
    script = Path(sys.executable).parent / "hashmesh"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hashmesh.node.cli.main"]


def run_cli(*args: str | Path, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*hashmesh_command(), *map(str, args)], capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, "NO_COLOR": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"hashmesh {' '.join(map(str, args))} exited "
                             f"{result.returncode}\nstdout: {result.stdout}\n"
                             f"stderr: {result.stderr}")
    return result


def run_json(*args: str | Path) -> Any:
    return json.loads(run_cli(*args).stdout)


class NodeProcess:
    """``hashmesh run`` in a child process, waited on until it answers /healthz."""

    def __init__(self, config: Path, url: str, log_path: Path,
                 preexec_fn: Callable[[], object] | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.config = config
        self.extra_args = extra_args  # more arguments of ``hashmesh run`` (--log-level DEBUG)
        self.url = url
        self.log_path = log_path
        self.preexec_fn = preexec_fn  # run in the child before exec (rlimits, signals)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> NodeProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen([*hashmesh_command(), "run", "--config", str(self.config),
                                         *self.extra_args],
                                        stdout=log, stderr=subprocess.STDOUT,
                                        preexec_fn=self.preexec_fn)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"node exited early:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"node did not start:\n{self.log_path.read_text()}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()
