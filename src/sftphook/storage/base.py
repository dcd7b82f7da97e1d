"""The storage interface: what the SFTP front needs from wherever files live.

Paths are client paths (a home-relative "/a/b" as the client sends it); each backend instance is
bound to one organization root and one home, resolves every path on the real tree, and refuses
anything that would reach outside the home with `OutsideHome`. Results carry the organization
path (components from the organization root) that events report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Protocol


@dataclasses.dataclass(frozen=True, slots=True)
class FileInfo:
    name: str
    # Components from the organization root, as events report them.
    org_parts: tuple[str, ...]
    size: int
    mode: int
    mtime: float
    atime: float
    nlink: int = 1

    @property
    def is_dir(self) -> bool:
        return (self.mode & 0o170000) == 0o040000

    @property
    def is_link(self) -> bool:
        return (self.mode & 0o170000) == 0o120000

    @property
    def is_file(self) -> bool:
        return (self.mode & 0o170000) == 0o100000


class ReadHandle(Protocol):
    """A file being read. `info()` answers from what the handle knows: it never blocks."""

    org_parts: tuple[str, ...]

    def pread(self, offset: int, size: int) -> bytes: ...

    def info(self) -> FileInfo: ...

    def identity(self) -> tuple[object, ...] | None:
        """The file as it is now, told apart from any other content without reading it: equal
        identities from one backend mean the same bytes, so a SHA-256 taken of the file while
        it had this identity holds again (`Digests` in `sftp/transfer.py`). None when the
        handle cannot promise that: the file is then read each time. May block as `pread`."""
        ...

    def close(self) -> None: ...


class WriteHandle(Protocol):
    """A file being written. `atomic` handles write to a hidden temporary name and become
    visible only on `commit()`; `abort()` leaves nothing behind. `info()` never blocks."""

    org_parts: tuple[str, ...]
    atomic: bool

    def pwrite(self, offset: int, data: bytes) -> int: ...

    def pread(self, offset: int, size: int) -> bytes: ...

    def streamed(self, offset: int, size: int) -> None:
        """A large upload wrote these bytes in order and goes on: a hint (nothing to do, or
        start moving them to where they will stay)."""
        ...

    def info(self) -> FileInfo: ...

    def truncate(self, size: int) -> None: ...

    def fsync(self) -> None: ...

    def commit(self) -> FileInfo: ...

    def abort(self) -> None: ...


class Storage(Protocol):
    """One organization's files as seen by one user (confined to a home).

    When `blocking` is true (a network store), every method and every handle method but
    `info()` may wait on the network: callers on an event loop run them in threads.
    """

    blocking: bool

    def close(self) -> None: ...

    def client_path(self, parts: tuple[str, ...]) -> str: ...

    def stat(self, path: str, *, follow: bool = True) -> FileInfo: ...

    def listdir(self, path: str) -> tuple[tuple[str, ...], Iterator[FileInfo]]:
        """The directory's organization path and its entries, read lazily. The iterator may hold
        a resource (an open directory) until exhausted: call its `close()` when stopping early."""
        ...

    def open_read(self, path: str) -> ReadHandle: ...

    def open_write(
        self,
        path: str,
        *,
        truncate: bool,
        exclusive: bool,
        append: bool,
        read: bool,
        mode: int | None = None,
    ) -> WriteHandle:
        """`mode`: the permission bits the client sent with the open, for a file the upload
        creates (an atomic upload always does); an existing file written in place keeps its
        own."""
        ...

    def remove(self, path: str) -> tuple[str, ...]: ...

    def mkdir(self, path: str, mode: int | None = None) -> tuple[str, ...]: ...

    def rmdir(self, path: str) -> tuple[str, ...]: ...

    def rename(
        self, old: str, new: str, *, replace: bool
    ) -> tuple[tuple[str, ...], tuple[str, ...], FileInfo]:
        """The organization paths before and after, and the info of what is now at the new
        path; the same path twice when nothing changed (a name renamed to itself, or to
        another name of the same file, which rename(2) leaves in place)."""
        ...

    def readlink(self, path: str) -> str: ...

    def symlink(self, target: str, path: str) -> tuple[str, ...]:
        """A symbolic link `path` to `target`: the organization path of the link."""
        ...

    def link(self, old: str, new: str) -> tuple[tuple[str, ...], tuple[str, ...], FileInfo]:
        """A hard link `new` to the file `old`: the organization paths of that file and of the
        new name, and the file's info."""
        ...

    def setstat(
        self,
        path: str,
        *,
        mode: int | None = None,
        times: tuple[float, float] | None = None,
        size: int | None = None,
        follow: bool = True,
    ) -> None: ...

    def statvfs(self, path: str) -> tuple[int, ...]: ...

    def org_parts(self, path: str) -> tuple[str, ...]: ...


class StorageBackend(Protocol):
    """Where every organization's files live: opened once per process (`open_backend`), it
    hands each session a `Storage` confined to the user's home."""

    blocking: bool

    def for_user(self, organization_id: str, home: str) -> Storage:
        """May block when `blocking` (it makes sure the home exists)."""
        ...

    def check(self) -> str:
        """`"ok"` when the store can take files now, else a short reason for `/readyz` (no
        secret, no host path). May block even on local disk (a hung NFS mount): callers run it
        in a thread with a deadline (`storage/readiness.py`)."""
        ...

    def close(self) -> None: ...
