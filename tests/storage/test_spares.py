"""Files made ready for uploads by a background thread."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sftphook.storage.local import UPLOADS_DIR, LocalBackend, clean_stale_uploads
from sftphook.storage.spares import SPARES_DIR, SpareFiles


def _until(check, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def test_files_are_kept_ready_and_the_untaken_removed_at_close(tmp_path: Path) -> None:
    directory = tmp_path / "ready"
    spares = SpareFiles(directory, keep=3)
    try:
        _until(lambda: len(os.listdir(directory)) == 3)
        fd, name = spares.take()  # type: ignore[misc]
        assert os.fstat(fd).st_size == 0 and name in os.listdir(directory)
        os.close(fd)
        os.unlink(name, dir_fd=spares.dir_fd)
        _until(lambda: len(os.listdir(directory)) == 3)  # made again
    finally:
        spares.close()
    assert os.listdir(directory) == []


def test_uploads_take_ready_files_and_fall_back_when_none_is(tmp_path: Path) -> None:
    backend = LocalBackend.open(tmp_path)
    try:
        storage = backend.for_user("org", "/")
        spares = tmp_path / SPARES_DIR / "local"
        _until(lambda: len(os.listdir(spares)) == 8)
        ready = set(os.listdir(spares))
        write = {"truncate": True, "exclusive": False, "append": False, "read": False}
        handle = storage.open_write("a.txt", **write)
        handle.pwrite(0, b"hello")
        handle.commit()
        assert (tmp_path / "org" / "a.txt").read_bytes() == b"hello"
        # The upload used one of the ready files (renamed into place), not a new one.
        assert len(ready - set(os.listdir(spares))) >= 1
        assert os.listdir(tmp_path / UPLOADS_DIR) == []
        # More uploads at once than files ready: the rest create their own, all land.
        handles = [storage.open_write(f"b{i}", **write) for i in range(20)]
        for i, h in enumerate(handles):
            h.pwrite(0, str(i).encode())
            h.commit()
        assert sorted(os.listdir(tmp_path / "org")) == sorted(
            ["a.txt", *(f"b{i}" for i in range(20))]
        )
        assert os.listdir(tmp_path / UPLOADS_DIR) == []
        storage.close()
    finally:
        backend.close()
    assert os.listdir(tmp_path / SPARES_DIR / "local") == []


def test_files_left_by_a_stopped_process_are_removed_at_start(tmp_path: Path) -> None:
    mine, other = tmp_path / SPARES_DIR / "node-a", tmp_path / SPARES_DIR / "node-b"
    for directory in (tmp_path / UPLOADS_DIR, mine, other):
        directory.mkdir(parents=True)
        (directory / "0123.upload").write_bytes(b"")
    assert clean_stale_uploads(tmp_path, mine) == 1  # the interrupted upload; a spare is not one
    assert os.listdir(tmp_path / UPLOADS_DIR) == os.listdir(mine) == []
    # Another node sharing the files' root keeps its ready files.
    assert os.listdir(other) == ["0123.upload"]


def test_nodes_sharing_a_root_keep_their_ready_files_apart(tmp_path: Path) -> None:
    a = LocalBackend.open(tmp_path, node="a")
    try:
        _until(lambda: len(os.listdir(tmp_path / SPARES_DIR / "a")) == 8)
        b = LocalBackend.open(tmp_path, node="b")  # starts later: must not clear a's files
        try:
            assert len(os.listdir(tmp_path / SPARES_DIR / "a")) == 8
            write = {"truncate": True, "exclusive": False, "append": False, "read": False}
            for backend, name in ((a, "from-a"), (b, "from-b")):
                storage = backend.for_user("org", "/")
                handle = storage.open_write(name, **write)
                handle.pwrite(0, name.encode())
                handle.commit()
                storage.close()
                assert (tmp_path / "org" / name).read_bytes() == name.encode()
        finally:
            b.close()
    finally:
        a.close()
