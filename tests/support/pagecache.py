"""The page cache as tests see it: which pages of a file the kernel holds in memory."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path


def resident_pages(path: Path) -> int:
    """How many of `path`'s pages are in the page cache (mincore on a private mapping)."""
    size = path.stat().st_size
    page = mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        anchor = ctypes.c_char.from_buffer(mapped)
        try:
            vec = (ctypes.c_ubyte * ((size + page - 1) // page))()
            result = libc.mincore(
                ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(size), vec
            )
            assert result == 0, os.strerror(ctypes.get_errno())
            return sum(v & 1 for v in vec)
        finally:
            del anchor


def cached_file(path: Path, size: int) -> None:
    """Write `size` random bytes to `path`, on disk and in the page cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())
    path.read_bytes()
