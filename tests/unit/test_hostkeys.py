"""Host key files: made whole or not at all, mode 0600, never replaced by a stopped run's
leftovers."""

from __future__ import annotations

import stat
from pathlib import Path

import asyncssh

from sftphook.sftp import hostkeys


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_made_once_then_kept(tmp_path: Path) -> None:
    first = hostkeys.load_or_create(tmp_path)
    again = hostkeys.load_or_create(tmp_path)
    assert hostkeys.fingerprints(first) == hostkeys.fingerprints(again)
    for name, _alg, _size in hostkeys.HOST_KEYS:
        assert _mode(tmp_path / name) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_an_empty_key_file_is_made_again_not_a_node_that_cannot_start(tmp_path: Path) -> None:
    # What a run stopped between creating the file and writing it left behind.
    (tmp_path / "ssh_host_ed25519_key").touch(mode=0o600)
    keys = hostkeys.load_or_create(tmp_path)
    assert keys[0].get_algorithm() == "ssh-ed25519"
    assert asyncssh.read_private_key(tmp_path / "ssh_host_ed25519_key").public_data == (
        keys[0].public_data
    )


def test_a_shared_key_is_written_0600_whatever_a_stopped_copy_left(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    leftover = tmp_path / ".ssh_host_ed25519_key.new"
    leftover.write_bytes(b"half a key")
    leftover.chmod(0o644)
    hostkeys._write_copies(tmp_path, {"ssh_host_ed25519_key": key.export_private_key().decode()})
    path = tmp_path / "ssh_host_ed25519_key"
    assert _mode(path) == 0o600
    assert asyncssh.read_private_key(path).public_data == key.public_data
    assert not leftover.exists()


def test_a_key_made_meanwhile_by_another_process_is_kept_with_its_own_pub(tmp_path: Path) -> None:
    # Two processes making the same missing key: the second keeps the first's, and writes no
    # `.pub` of its own key beside it.
    path = tmp_path / "ssh_host_ed25519_key"
    first = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(first.export_private_key())
    second = asyncssh.generate_private_key("ssh-ed25519")
    assert not hostkeys._write_private(path, second.export_private_key(), replace=False)
    assert asyncssh.read_private_key(path).public_data == first.public_data
    assert hostkeys._write_private(path, second.export_private_key(), replace=True)
    assert asyncssh.read_private_key(path).public_data == second.public_data
