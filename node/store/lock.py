"""One process at a time on a data directory: an ``fcntl`` lock on ``DATA_DIR/hashmesh.lock``.

Two ``hashmesh run`` on one data directory would each load an index from the same database
and then drift apart silently (each only applies its own writes), and ``hashmesh import``
into a running node stores records the node's index never sees. So ``run`` holds an
exclusive lock for its lifetime, and commands that write the store offline take it too;
the holder writes its pid into the file so the refusal can name it.

``fcntl`` locks die with their process (even on ``kill -9``), so a crashed node never leaves
a stale lock behind; the pid in the file is only a label.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "hashmesh.lock"


class DataDirLockedError(Exception):
    """Another process holds the data directory (its pid is in the message)."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class DataDirLock:
    """An exclusive, non-blocking lock on a data directory, held until ``release``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, doing: str = "use it") -> DataDirLock:
        """Take the lock or raise ``DataDirLockedError`` naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"pid {pid}" if pid else "another process"
            raise DataDirLockedError(
                f"{self.path.parent}: a hashmesh node ({who}) is running on this data "
                f"directory; stop it before you {doing}", pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock; the file stays (no unlink race)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
