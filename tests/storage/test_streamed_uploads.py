"""What a large upload on local disk tells the kernel as it streams (`LocalWriteHandle.streamed`):
start writing the bytes received so far to disk, and drop the cache of the file it replaces."""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

import pytest

from sftphook.storage.local import LocalBackend, release_cache, start_writeback
from tests.support.pagecache import cached_file, resident_pages

MiB = 1024 * 1024
_WRITE = {"truncate": True, "exclusive": False, "append": False, "read": False}

_FS_IOC_FIEMAP = 0xC020660B
_FIEMAP_EXTENT_DELALLOC = 0x4
_EXTENT = struct.Struct("=QQQQQL12x")  # struct fiemap_extent, 56 bytes
_HEADER = struct.Struct("=QQLLLL")  # struct fiemap, 32 bytes


def _delayed(fd: int) -> list[tuple[int, int]]:
    """The byte ranges of `fd` whose disk blocks the filesystem has not allocated yet (FIEMAP's
    DELALLOC extents: in memory only, nothing asked to write them)."""
    count = 64
    buf = bytearray(_HEADER.pack(0, 2**64 - 1, 0, 0, count, 0) + bytes(_EXTENT.size * count))
    try:
        fcntl.ioctl(fd, _FS_IOC_FIEMAP, buf)
    except OSError as exc:
        pytest.skip(f"this filesystem does not map extents (FIEMAP: {exc.strerror})")
    mapped = _HEADER.unpack_from(buf)[3]
    ranges = []
    for i in range(mapped):
        logical, _, length, _, _, flags = _EXTENT.unpack_from(buf, _HEADER.size + _EXTENT.size * i)
        if flags & _FIEMAP_EXTENT_DELALLOC:
            ranges.append((logical, logical + length))
    return ranges


def test_streamed_bytes_are_sent_to_disk_and_the_rest_stay_in_memory(tmp_path: Path) -> None:
    backend = LocalBackend.open(tmp_path)
    try:
        handle = backend.for_user("org", "/").open_write("big.bin", **_WRITE)
        data = os.urandom(4 * MiB)
        handle.pwrite(0, data)
        if _delayed(handle.fd) != [(0, 4 * MiB)]:
            pytest.skip("this filesystem allocates blocks as it writes (no delayed allocation)")
        handle.streamed(0, 2 * MiB)
        # The first 2 MiB have their blocks (being written); the rest waits as before.
        assert _delayed(handle.fd) == [(2 * MiB, 4 * MiB)]
        handle.commit()
        assert (tmp_path / "org" / "big.bin").read_bytes() == data
    finally:
        backend.close()


def test_an_upload_replacing_a_file_drops_that_files_cache_once_it_streams(
    tmp_path: Path,
) -> None:
    old = tmp_path / "org" / "big.bin"
    cached_file(old, 8 * MiB)
    pages = 8 * MiB // mmap.PAGESIZE
    assert resident_pages(old) == pages
    backend = LocalBackend.open(tmp_path)
    try:
        handle = backend.for_user("org", "/").open_write("big.bin", **_WRITE)
        handle.pwrite(0, b"x" * MiB)
        assert resident_pages(old) == pages  # opening and writing leave it alone
        handle.streamed(0, MiB)
        assert resident_pages(old) < pages // 10
        handle.commit()
        assert old.read_bytes() == b"x" * MiB
    finally:
        backend.close()


def test_a_new_file_or_one_written_in_place_streams_without_dropping_anything(
    tmp_path: Path,
) -> None:
    other = tmp_path / "org" / "other.bin"
    cached_file(other, MiB)
    backend = LocalBackend.open(tmp_path)
    try:
        storage = backend.for_user("org", "/")
        new = storage.open_write("new.bin", **_WRITE)
        new.pwrite(0, b"n" * MiB)
        new.streamed(0, MiB)
        new.commit()
        # Appending writes the file itself: its cache is what it reads and extends.
        appended = storage.open_write(
            "other.bin", truncate=False, exclusive=False, append=True, read=False
        )
        appended.pwrite(MiB, b"a" * MiB)
        appended.streamed(MiB, MiB)
        appended.commit()
        assert resident_pages(other) == 2 * MiB // mmap.PAGESIZE
    finally:
        backend.close()
    assert (tmp_path / "org" / "new.bin").read_bytes() == b"n" * MiB


def test_the_hints_ignore_what_they_cannot_apply_to(tmp_path: Path) -> None:
    (tmp_path / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert release_cache("missing", dir_fd) is False
        assert release_cache("fifo", dir_fd) is False  # not opened for reading: no hang
        assert release_cache("dir", dir_fd) is False
    finally:
        os.close(dir_fd)
    read_end, write_end = os.pipe()
    try:
        assert start_writeback(read_end, 0, MiB) is False  # a pipe has no pages to write
    finally:
        os.close(read_end)
        os.close(write_end)
