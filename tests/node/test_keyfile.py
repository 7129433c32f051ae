"""Secret key files: created 0600, never overwritten, refused when others can read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hashmesh.node.config.keyfile import (
    KeyFileError,
    atomic_write,
    read_secret_key,
    write_secret_key,
)
from hashmesh.protocol.keys import SigningKey

SEED = bytes(range(32))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def key() -> SigningKey:
    return SigningKey(SEED)


def test_written_key_reads_back_as_the_same_key(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "root.key"
    write_secret_key(path, key)
    assert path.read_text() == key.secret_text() + "\n"
    assert read_secret_key(path).id == key.id


def test_key_file_is_mode_0600_even_with_a_permissive_umask(tmp_path: Path,
                                                            key: SigningKey) -> None:
    old = os.umask(0)
    try:
        write_secret_key(tmp_path / "root.key", key)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "root.key") == 0o600


def test_key_bytes_are_never_in_a_file_others_can_read(tmp_path: Path, key: SigningKey,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Check the mode of every file the writer creates at the instant it is created, before
    # any byte is written, with a umask that would otherwise leave it world-readable.
    real_open = os.open
    seen: list[int] = []

    def checking_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777,
                      **kwargs: object) -> int:
        fd = real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]
        if flags & os.O_CREAT:
            seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return fd

    old = os.umask(0o022)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(os, "open", checking_open)
            write_secret_key(tmp_path / "root.key", key)
    finally:
        os.umask(old)
    assert seen and all(mode & 0o077 == 0 for mode in seen)


def test_write_refuses_to_overwrite_an_existing_key(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "root.key"
    write_secret_key(path, key)
    with pytest.raises(KeyFileError, match="already exists; refusing to overwrite") as info:
        write_secret_key(path, SigningKey.generate())
    assert str(info.value).startswith(str(path))
    assert read_secret_key(path).id == key.id


def test_write_leaves_no_temporary_files(tmp_path: Path, key: SigningKey) -> None:
    write_secret_key(tmp_path / "root.key", key)
    with pytest.raises(KeyFileError):
        write_secret_key(tmp_path / "root.key", key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root.key"]


def test_write_into_a_missing_directory_names_it(tmp_path: Path, key: SigningKey) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        write_secret_key(tmp_path / "keys" / "root.key", key)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610])
def test_read_refuses_a_key_that_other_users_can_access(tmp_path: Path, key: SigningKey,
                                                        mode: int) -> None:
    path = tmp_path / "root.key"
    write_secret_key(path, key)
    path.chmod(mode)
    with pytest.raises(KeyFileError) as info:
        read_secret_key(path)
    message = str(info.value)
    assert message.startswith(f"{path}: permissions {mode:04o} are too open")
    assert f"chmod 600 {path}" in message


def test_read_accepts_an_owner_only_read_only_key(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "root.key"
    write_secret_key(path, key)
    path.chmod(0o400)
    assert read_secret_key(path).id == key.id


def test_read_of_a_missing_key_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(KeyFileError, match="key file not found") as info:
        read_secret_key(path)
    assert str(info.value).startswith(str(path))
    assert info.value.path == path


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "expected 'ed25519-secret:"),
    (b"hello world\n", "expected 'ed25519-secret:"),
    (b"ed25519-secret:AAAA\n", "must be 32 bytes"),
    (b"ed25519-secret:\xff\xfe\n", "not ASCII text"),
    (b"ed25519:iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w\n", "this is a public key id"),
    (b"x" * 5000, "larger than 4096 bytes"),
])
def test_read_of_a_malformed_key_names_the_path_and_the_fault(tmp_path: Path, content: bytes,
                                                              reason: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError) as info:
        read_secret_key(path)
    message = str(info.value)
    assert message.startswith(f"{path}: malformed key file")
    assert reason in message


def test_malformed_key_message_does_not_echo_the_content(tmp_path: Path, key: SigningKey) -> None:
    # a truncated secret is still mostly secret: the error must not print it
    path = tmp_path / "bad.key"
    secret = key.secret_text()
    path.write_text(secret[:-3] + "\n")
    path.chmod(0o600)
    with pytest.raises(KeyFileError) as info:
        read_secret_key(path)
    assert secret[len("ed25519-secret:"):][:20] not in str(info.value)


def test_read_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not a regular file"):
        read_secret_key(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_read_of_an_unreadable_key_says_so(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "root.key"
    write_secret_key(path, key)
    path.chmod(0o000)
    with pytest.raises(KeyFileError, match="cannot read key file: Permission denied"):
        read_secret_key(path)


def test_atomic_write_replaces_whole_file_with_exact_mode(tmp_path: Path) -> None:
    path = tmp_path / "peers.toml"
    path.write_text("old")
    atomic_write(path, b"new", mode=0o644, overwrite=True)
    assert path.read_bytes() == b"new"
    assert mode_of(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["peers.toml"]


def test_atomic_write_without_overwrite_keeps_the_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("old")
    with pytest.raises(FileExistsError):
        atomic_write(path, b"new", mode=0o600, overwrite=False)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
