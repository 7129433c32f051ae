"""Secret key files, and the atomic file writes that keep them (and configs) whole.

A node's identity is an Ed25519 secret key in a one-line file (``ed25519-secret:<base64url>``,
the form ``protocol.keys`` defines). Losing or leaking that file means losing or leaking the
organisation's identity, so this module is strict in the way ``ssh`` is:

* a key file is created with mode 0600 from the first byte (never world-readable, even for
  the instant between create and ``chmod``), written to a temporary file, fsynced and then
  linked into place, so a crash leaves either no key or the whole key;
* an existing key file is never overwritten (regenerating a root key changes the origin);
* a key file that other users can read is refused, with the ``chmod`` that fixes it.

``atomic_write`` is public because ``node/config/node.py`` rewrites ``peers.toml`` the same way.

    KeyFileError   a key file is missing, unreadable, too open, malformed, or already exists
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from hashmesh.protocol.errors import KeyFormatError
from hashmesh.protocol.keys import PUBLIC_PREFIX, SigningKey

MAX_KEY_FILE_BYTES = 4096
KEY_FILE_MODE = 0o600


class KeyFileError(Exception):
    """A key file problem an operator can fix; ``str()`` names the file first."""

    def __init__(self, message: str, path: Path | str) -> None:
        self.path = Path(path)
        self.reason = message
        super().__init__(f"{path}: {message}")


def write_secret_key(path: Path, key: SigningKey) -> None:
    """Write ``key`` to a new 0600 file at ``path``; refuse to replace an existing file."""
    try:
        atomic_write(path, (key.secret_text() + "\n").encode("ascii"),
                     mode=KEY_FILE_MODE, overwrite=False)
    except FileExistsError:
        raise KeyFileError("key file already exists; refusing to overwrite it "
                           "(move it away first if you really mean to replace this key)",
                           path) from None
    except FileNotFoundError:
        raise KeyFileError(f"directory {path.parent} does not exist", path) from None
    except OSError as exc:
        raise KeyFileError(f"cannot write key file: {exc.strerror or exc}", path) from None


def read_secret_key(path: Path) -> SigningKey:
    """Read a secret key file, refusing one that other users could read (as ssh does)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError("key file not found", path) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file: {exc.strerror or exc}", path) from None
    try:
        _check_key_file_stat(os.fstat(fd), path)
        data = os.read(fd, MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file: {exc.strerror or exc}", path) from None
    finally:
        os.close(fd)
    return _parse_secret_key(data, path)


def _check_key_file_stat(st: os.stat_result, path: Path) -> None:
    """Checked on the open descriptor, so the file cannot be swapped between check and read."""
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError("not a regular file", path)
    mode = stat.S_IMODE(st.st_mode)
    if os.name == "posix" and mode & 0o077:
        raise KeyFileError(
            f"permissions {mode:04o} are too open: other users can read this secret key; "
            f"fix with: chmod 600 {path}", path)


def _parse_secret_key(data: bytes, path: Path) -> SigningKey:
    """Decode the file's text; errors never quote the content, which may be a secret."""
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"malformed key file: larger than {MAX_KEY_FILE_BYTES} bytes", path)
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise KeyFileError("malformed key file: not ASCII text", path) from None
    if text.startswith(PUBLIC_PREFIX):
        raise KeyFileError("malformed key file: this is a public key id, "
                           "not a secret key ('ed25519-secret:...')", path)
    try:
        return SigningKey.from_secret_text(text, str(path))
    except KeyFormatError as exc:
        raise KeyFileError(f"malformed key file: {exc.reason}", path) from None


def atomic_write(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same directory, created with ``mode`` (0600 for
    secrets: the permission is set by ``open`` itself, never loosened later), fsynced, then
    renamed over ``path`` (``overwrite``) or hard-linked to it, which fails with
    ``FileExistsError`` if ``path`` exists, without a check-then-create race.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # a umask can only remove bits; make the mode exact
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_exclusive(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_directory(path.parent)


def _link_exclusive(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: fall back to check-then-rename (racy, but only
        # against another writer of the same path, which the CLI never runs concurrently).
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(tmp, path)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory, so best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
