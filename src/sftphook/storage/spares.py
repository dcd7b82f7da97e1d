"""Empty files made ahead of the uploads that will need them.

Creating a file is the slowest step of a small upload on local disk: 0.2-1 ms of ext4 journal
work on the test machine, as long as the rest of the upload's server work, and the same again
whether it runs on the event loop (holding up every session) or in an I/O thread (a hand-off and
back). A background thread keeps a few empty files ready in their own directory; an upload takes
one (a `deque.popleft`) and renames it into place at its close, as it would its own temporary
file. When none is ready (a burst), the upload creates its file as before.

The files are `*.upload` like any temporary upload, in a directory of the node's own (nodes may
share the files' root), so those a stopped process leaves behind are removed at its next start
(`clean_stale_uploads`).

The same thread also frees the files that uploads replace and deletes remove (`hold`,
`release`). An upload that overwrites a file renames over it, and the kernel frees the old
file's inode and blocks inside that rename (about 90 us of ext4 work here) unless a descriptor
still holds it: the upload keeps one (an `O_PATH` descriptor, opened just before the rename),
and the freeing happens here at its close, after the client has its reply; a delete likewise.
At most `MAX_HELD` files wait to be freed: beyond that (a burst of deletes faster than this
thread frees them) they are freed in the call as before, so held files never use up the
process's descriptors.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

SPARES_DIR = ".uploads-ready"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Read too: the hash of an upload written out of order is taken at close.
FILE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
# Linux: a descriptor that holds a file without opening it for I/O.
_O_PATH: int | None = getattr(os, "O_PATH", None)
MAX_HELD = 64


@contextlib.contextmanager
def freed_after(spares: SpareFiles | None, name: str, dir_fd: int) -> Iterator[None]:
    """Around the call that removes or replaces `name` in `dir_fd` (an unlink, a rename over
    it): the file is held across the call and freed after it, on the spare-files thread
    (`SpareFiles.hold`, `release`). Without spare files, or without room, it is freed in the
    call as before."""
    held = spares.hold(name, dir_fd) if spares is not None else None
    try:
        yield
    finally:
        if held is not None:
            assert spares is not None
            # If the call failed the file is still linked: this close frees nothing.
            spares.release(held)


class SpareFiles:
    def __init__(self, directory: Path, *, keep: int = 8) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self.dir_fd = os.open(directory, _DIR_FLAGS)
        self._keep = keep
        self._ready: collections.deque[tuple[int, str]] = collections.deque()
        self._wanted = threading.Condition()
        self._stopping = False
        self._making = ""
        self._to_release: list[int] = []
        self._thread = threading.Thread(target=self._fill, name="sftp-spare-files", daemon=True)
        self._thread.start()

    def take(self) -> tuple[int, str] | None:
        """An empty file opened read-write and its name in `dir_fd`, or None if none is ready."""
        with self._wanted:
            spare = self._ready.popleft() if self._ready else None
            self._wanted.notify()
        return spare

    def hold(self, name: str, dir_fd: int) -> int | None:
        """An `O_PATH` descriptor of `name` in `dir_fd`, to give to `release` once the name is
        removed or replaced; None if there is no such file, or no room for one more."""
        if _O_PATH is None:
            return None
        with self._wanted:
            if self._stopping or len(self._to_release) >= MAX_HELD:
                return None
        try:
            return os.open(name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return None

    def release(self, fd: int) -> None:
        """Close `fd` on this object's thread: the last hold on a file that an upload replaced
        or a delete removed, which the kernel frees at that close."""
        with self._wanted:
            if self._stopping:
                os.close(fd)
                return
            self._to_release.append(fd)
            self._wanted.notify()

    def _release_pending(self) -> None:
        with self._wanted:
            pending, self._to_release = self._to_release, []
        for fd in pending:
            with contextlib.suppress(OSError):
                os.close(fd)

    def ready_names(self) -> set[str]:
        """The names of the files ready and not taken yet (or being made)."""
        with self._wanted:
            return {name for _fd, name in self._ready} | {self._making}

    def _fill(self) -> None:
        while True:
            with self._wanted:
                while (
                    not self._stopping and len(self._ready) >= self._keep and not self._to_release
                ):
                    self._wanted.wait()
                if self._stopping:
                    return
                releasing = bool(self._to_release)
            if releasing:
                self._release_pending()
                continue
            name = f"{uuid.uuid4().hex}.upload"
            with self._wanted:
                self._making = name
            try:
                fd = os.open(name, FILE_FLAGS, 0o644, dir_fd=self.dir_fd)
            except OSError as exc:
                # A full or read-only disk: uploads create their own files (and fail) meanwhile.
                log.warning("could not make a file ready for uploads: %s", exc)
                with self._wanted:
                    self._wanted.wait(5.0)
                continue
            with self._wanted:
                self._ready.append((fd, name))
                self._making = ""

    def close(self) -> None:
        """Stop making files, free the files still held, and remove the ready ones not taken."""
        with self._wanted:
            self._stopping = True
            self._wanted.notify_all()
        self._thread.join(10)
        self._release_pending()
        while self._ready:
            fd, name = self._ready.popleft()
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self.dir_fd)
        with contextlib.suppress(OSError):
            os.close(self.dir_fd)
