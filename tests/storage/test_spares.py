"""Files made ready for uploads by a background thread."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sftphook.storage.local import UPLOADS_DIR, LocalBackend, clean_stale_uploads
from sftphook.storage.spares import MAX_HELD, SPARES_DIR, SpareFiles


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
        assert backend.uploads_in_progress() == []
        # More uploads at once than files ready: the rest create their own, all land.
        handles = [storage.open_write(f"b{i}", **write) for i in range(20)]
        for i, h in enumerate(handles):
            h.pwrite(0, str(i).encode())
            h.commit()
        assert sorted(os.listdir(tmp_path / "org")) == sorted(
            ["a.txt", *(f"b{i}" for i in range(20))]
        )
        assert os.listdir(tmp_path / UPLOADS_DIR) == ["local"]
        storage.close()
    finally:
        backend.close()
    assert os.listdir(tmp_path / SPARES_DIR / "local") == []


def test_files_left_by_a_stopped_process_are_removed_at_start(tmp_path: Path) -> None:
    uploads, spares = tmp_path / UPLOADS_DIR, tmp_path / SPARES_DIR
    mine = (uploads / "node-a", spares / "node-a")
    other = (uploads / "node-b", spares / "node-b")
    for directory in (uploads, *mine, *other):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "0123.upload").write_bytes(b"")
    # This node's interrupted upload and one left directly under .uploads/ by an older
    # version; its own ready file is removed without counting (it never held data).
    assert clean_stale_uploads(tmp_path, uploads=mine[0], spares=mine[1]) == 2
    assert os.listdir(mine[0]) == os.listdir(mine[1]) == []
    assert sorted(os.listdir(uploads)) == ["node-a", "node-b"]
    # Another node sharing the files' root keeps its uploads under way and its ready files.
    assert os.listdir(other[0]) == os.listdir(other[1]) == ["0123.upload"]


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


def test_a_node_starting_leaves_other_nodes_uploads_under_way_alone(tmp_path: Path) -> None:
    # Node a with no ready files: its upload writes its own temporary file.
    a = LocalBackend(tmp_path, uploads=tmp_path / UPLOADS_DIR / "a")
    storage = a.for_user("org", "/")
    write = {"truncate": True, "exclusive": False, "append": False, "read": False}
    under_way = storage.open_write("under-way", **write)
    under_way.pwrite(0, b"kept")
    assert a.uploads_in_progress() != []
    LocalBackend.open(tmp_path, node="b").close()  # another node starts (and stops)
    under_way.commit()
    storage.close()
    assert (tmp_path / "org" / "under-way").read_bytes() == b"kept"
    assert a.uploads_in_progress() == []


def _fds_on_deleted(path: Path) -> list[str]:
    """This process's descriptors still on a deleted `path`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target == f"{path} (deleted)":
            found.append(fd)
    return found


def _capture_releases(storage: Any) -> tuple[SpareFiles, list[int], Callable[[int], None]]:
    """Keep what `storage`'s spare files would release: (the spare files, the descriptors kept,
    the real `release`)."""
    spares = storage._spares
    assert spares is not None
    released = spares.release
    held: list[int] = []
    spares.release = held.append
    return spares, held, released


def test_a_replaced_file_is_freed_after_the_rename_not_in_it(tmp_path: Path) -> None:
    backend = LocalBackend.open(tmp_path)
    write = {"truncate": True, "exclusive": False, "append": False, "read": False}
    try:
        storage = backend.for_user("org", "/")
        target = tmp_path / "org" / "a.txt"
        handle = storage.open_write("a.txt", **write)
        handle.pwrite(0, b"old")
        handle.commit()
        old_inode = target.stat().st_ino

        # The rename leaves the old file held, for the spare-files thread to let go.
        spares, held, released = _capture_releases(storage)
        handle = storage.open_write("a.txt", **write)
        handle.pwrite(0, b"new")
        handle.commit()
        assert target.read_bytes() == b"new"
        (fd,) = held
        old = os.fstat(fd)
        assert (old.st_ino, old.st_nlink) == (old_inode, 0)
        os.close(fd)

        # Through the spare-files thread: released soon after, nothing left holding it.
        spares.release = released  # type: ignore[method-assign]
        handle = storage.open_write("a.txt", **write)
        handle.pwrite(0, b"newer")
        handle.commit()
        assert target.read_bytes() == b"newer"
        _until(lambda: _fds_on_deleted(target) == [])
        # A new file replaces nothing: nothing held.
        spares.release = held.append  # type: ignore[method-assign]
        handle = storage.open_write("b.txt", **write)
        handle.commit()
        assert held == [fd] and (tmp_path / "org" / "b.txt").exists()
        storage.close()
    finally:
        backend.close()


def test_a_release_after_close_closes_at_once(tmp_path: Path) -> None:
    spares = SpareFiles(tmp_path / "ready", keep=1)
    spares.close()
    fd = os.open(tmp_path / "x", os.O_CREAT | os.O_WRONLY, 0o600)
    spares.release(fd)
    try:
        os.fstat(fd)
    except OSError:
        pass
    else:
        raise AssertionError("the descriptor is still open")


def test_a_removed_file_is_freed_after_the_unlink(tmp_path: Path) -> None:
    backend = LocalBackend.open(tmp_path)
    try:
        storage = backend.for_user("org", "/")
        target = tmp_path / "org" / "gone.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"bye")
        inode = target.stat().st_ino
        _spares, held, released = _capture_releases(storage)
        assert storage.remove("gone.txt") == ("gone.txt",)
        assert not target.exists()
        (fd,) = held
        assert (os.fstat(fd).st_ino, os.fstat(fd).st_nlink) == (inode, 0)
        released(fd)
        _until(lambda: _fds_on_deleted(target) == [])
        storage.close()
    finally:
        backend.close()


def test_no_more_than_max_held_files_wait_to_be_freed(tmp_path: Path) -> None:
    spares = SpareFiles(tmp_path / "ready", keep=1)
    directory = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        (tmp_path / "f").write_bytes(b"x")
        with spares._wanted:  # the thread is kept from freeing anything meanwhile
            spares._to_release.extend([-1] * MAX_HELD)
            assert spares.hold("f", directory) is None
            spares._to_release.clear()
        fd = spares.hold("f", directory)
        assert fd is not None and os.fstat(fd).st_ino == (tmp_path / "f").stat().st_ino
        assert spares.hold("missing", directory) is None
        spares.release(fd)
    finally:
        os.close(directory)
        spares.close()
