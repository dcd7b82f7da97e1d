"""Local-disk storage: one directory per organization, every path resolved on the real tree.

Confinement does not trust path text. Each path is walked one component at a time from a
directory descriptor of the organization root (`openat` with `O_NOFOLLOW`): a symbolic link met
on the way is read and its target walked in turn, `..` climbs back only through directories
already walked, and the resolved path must lie inside the user's home. A link with an absolute
target (only the host can place one: links made over SFTP are stored relative) is never followed.
A directory swapped for a link after it was checked makes the `O_NOFOLLOW` open fail rather than
leave the tree, and the final operation acts on a name relative to the parent's descriptor.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import errno
import logging
import os
import stat as st
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from sftphook.errors import InvalidInput, NotFound, OutsideHome, PermissionDenied
from sftphook.storage.base import FileInfo
from sftphook.storage.paths import client_to_org, is_within, org_to_client, split
from sftphook.storage.spares import FILE_FLAGS, SPARES_DIR, SpareFiles, freed_after

log = logging.getLogger(__name__)

UPLOADS_DIR = ".uploads"
_MAX_LINK_HOPS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A file whose status changed less than this long ago has no identity (`LocalReadHandle`): its
# times come from a coarse clock, so a write just after a look could leave them as they were.
SETTLED_SECONDS = 2.0


def _outside() -> OutsideHome:
    return OutsideHome("that path leads outside your home directory")


def _info(name: str, parts: tuple[str, ...], s: os.stat_result) -> FileInfo:
    return FileInfo(
        name=name,
        org_parts=parts,
        size=s.st_size,
        mode=s.st_mode,
        mtime=s.st_mtime,
        atime=s.st_atime,
        nlink=s.st_nlink,
    )


# A `_Target` whose final name the walk did not look at.
_UNSEEN: Any = object()


class _Target:
    """A resolved path: the descriptor of its parent directory and its final name (or, for a
    directory named by itself such as the root, the directory's descriptor and no name)."""

    __slots__ = ("_seen", "dir_fd", "name", "parts")

    def __init__(
        self,
        dir_fd: int,
        name: str | None,
        parts: tuple[str, ...],
        seen: os.stat_result | None = _UNSEEN,
    ) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.parts = parts
        # What the walk found at the final name (None: nothing), handed out by the first
        # `lstat()` instead of a second look a few microseconds later.
        self._seen = seen

    def close(self) -> None:
        os.close(self.dir_fd)

    def lstat(self) -> os.stat_result | None:
        seen = self._seen
        if seen is not _UNSEEN:
            self._seen = _UNSEEN
            return cast(os.stat_result | None, seen)
        try:
            if self.name is None:
                return os.fstat(self.dir_fd)
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None


class LocalStorage:
    """The files of one organization under `org_root`, as one user confined to `home` sees them."""

    # A local call costs microseconds: cheaper inline than handed to a thread.
    blocking = False

    def __init__(
        self,
        files_root: Path,
        organization_id: str,
        home: str = "/",
        *,
        spares: SpareFiles | None = None,
        uploads: Path | None = None,
    ) -> None:
        self._spares = spares
        self.org_root = files_root / organization_id
        # As the kernel names it (`/proc/self/fd`): where an upload's directory is now.
        self._org_root_text = os.path.realpath(self.org_root)
        self.home = home
        self.home_parts = split(home)
        uploads = uploads or files_root / UPLOADS_DIR
        uploads.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.org_root.mkdir(parents=True, exist_ok=True, mode=0o755)
        self._root_fd = os.open(self.org_root, _DIR_FLAGS)
        self._uploads_fd = os.open(uploads, _DIR_FLAGS)
        self._ensure_home()

    def close(self) -> None:
        for fd in (self._root_fd, self._uploads_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _ensure_home(self) -> None:
        fd = os.dup(self._root_fd)
        try:
            for part in self.home_parts:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        finally:
            os.close(fd)

    # Resolution

    def _resolve(self, path: str, *, follow: bool) -> _Target:
        return self._resolve_parts(client_to_org(self.home, path), follow=follow)

    def _resolve_parts(self, parts: list[str], *, follow: bool) -> _Target:
        pending = collections.deque(parts)
        fds = [os.dup(self._root_fd)]
        names: list[str] = []
        hops = 0
        result: _Target | None = None
        try:
            while pending:
                part = pending.popleft()
                if part == "..":
                    if not names:
                        raise _outside()
                    names.pop()
                    os.close(fds.pop())
                    continue
                last = not pending
                if last and not follow:
                    result = _Target(fds[-1], part, (*names, part))
                    break
                try:
                    s = os.stat(part, dir_fd=fds[-1], follow_symlinks=False)
                except FileNotFoundError:
                    if last:
                        result = _Target(fds[-1], part, (*names, part), None)
                        break
                    raise
                if st.S_ISLNK(s.st_mode):
                    hops += 1
                    if hops > _MAX_LINK_HOPS:
                        raise OSError(errno.ELOOP, "too many levels of symbolic links")
                    target = os.readlink(part, dir_fd=fds[-1])
                    if target.startswith("/"):
                        raise _outside()
                    pending.extendleft(reversed(split(target)))
                    continue
                if last:
                    result = _Target(fds[-1], part, (*names, part), s)
                    break
                if not st.S_ISDIR(s.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory")
                fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
                names.append(part)
            if result is None:
                result = _Target(fds[-1], None, tuple(names))
            if not is_within(self.home_parts, list(result.parts)):
                raise _outside()
            return result
        except BaseException:
            result = None
            raise
        finally:
            keep = result.dir_fd if result is not None else -1
            for fd in fds:
                if fd != keep:
                    os.close(fd)

    @contextlib.contextmanager
    def _target(self, path: str, *, follow: bool) -> Iterator[_Target]:
        target = self._resolve(path, follow=follow)
        try:
            yield target
        finally:
            target.close()

    def client_path(self, parts: tuple[str, ...]) -> str:
        return org_to_client(self.home, list(parts))

    def org_parts(self, path: str) -> tuple[str, ...]:
        with self._target(path, follow=False) as t:
            return t.parts

    # Reading

    def stat(self, path: str, *, follow: bool = True) -> FileInfo:
        with self._target(path, follow=follow) as t:
            s = t.lstat()
            if s is None:
                raise NotFound(f"no such file: {path}")
            return _info(t.name or "", t.parts, s)

    def listdir(self, path: str) -> tuple[tuple[str, ...], DirectoryListing]:
        with self._target(path, follow=True) as t:
            if t.name is None:
                fd = os.dup(t.dir_fd)
            else:
                try:
                    fd = os.open(t.name, _DIR_FLAGS, dir_fd=t.dir_fd)
                except OSError as exc:
                    if exc.errno == errno.ENOENT:
                        raise NotFound(f"no such directory: {path}") from None
                    raise
            return t.parts, DirectoryListing(fd, t.parts)

    def readlink(self, path: str) -> str:
        with self._target(path, follow=False) as t:
            if t.name is None:
                raise OSError(errno.EINVAL, "not a symbolic link")
            target = os.readlink(t.name, dir_fd=t.dir_fd)
        if target.startswith("/"):
            raise _outside()
        return target

    def open_read(self, path: str) -> LocalReadHandle:
        with self._target(path, follow=True) as t:
            if t.name is None:
                raise IsADirectoryError(errno.EISDIR, "is a directory")
            fd = os.open(t.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=t.dir_fd)
            s = os.fstat(fd)
            if not st.S_ISREG(s.st_mode):
                os.close(fd)
                raise IsADirectoryError(errno.EISDIR, "not a regular file")
            return LocalReadHandle(fd, t.parts)

    def statvfs(self, path: str) -> tuple[int, ...]:
        s = os.fstatvfs(self._root_fd)
        return (
            s.f_bsize,
            s.f_frsize,
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_favail,
            s.f_fsid,
            s.f_flag,
            s.f_namemax,
        )

    # Writing

    def open_write(
        self,
        path: str,
        *,
        truncate: bool,
        exclusive: bool,
        append: bool,
        read: bool,
        mode: int | None = None,
    ) -> LocalWriteHandle:
        # Read before the walk: a directory renamed during it is then seen at the commit.
        moves = _MOVES.count
        t = self._resolve(path, follow=True)
        try:
            if t.name is None:
                raise IsADirectoryError(errno.EISDIR, "is a directory")
            existing = t.lstat()
            if existing is not None:
                if exclusive:
                    raise FileExistsError(errno.EEXIST, "file already exists")
                if st.S_ISDIR(existing.st_mode):
                    raise IsADirectoryError(errno.EISDIR, "is a directory")
                if not st.S_ISREG(existing.st_mode):
                    raise PermissionDenied("only regular files can be written")
            # As setstat: no set-id or sticky bits for files users upload.
            mode = mode & 0o777 if mode is not None else None
            if existing is not None:
                # A file uploaded over another keeps that one's permission bits, as with
                # OpenSSH's server, which truncates and rewrites it (a mode sent with an open
                # applies only to a file it creates; `put -p` sets one after the upload).
                mode = st.S_IMODE(existing.st_mode) & 0o777
            atomic = (truncate or existing is None) and not append and not read
            if atomic:
                spare = self._spares.take() if self._spares is not None else None
                if spare is not None:
                    fd, temp_name = spare
                    temp_dir_fd = self._spares.dir_fd  # type: ignore[union-attr]
                else:
                    temp_name = f"{uuid.uuid4().hex}.upload"
                    temp_dir_fd = self._uploads_fd
                    fd = os.open(temp_name, FILE_FLAGS, 0o644, dir_fd=temp_dir_fd)
                return LocalWriteHandle(
                    fd,
                    t.dir_fd,
                    t.name,
                    t.parts,
                    os.dup(temp_dir_fd),
                    temp_name,
                    spares=self._spares,
                    replaces=existing is not None,
                    exclusive=exclusive,
                    mode=mode,
                    org_root=self._org_root_text,
                    moves=moves,
                )
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
            flags |= os.O_CLOEXEC | (os.O_APPEND if append else 0)
            flags |= os.O_EXCL if exclusive else 0
            if truncate:
                flags |= os.O_TRUNC
            fd = os.open(t.name, flags, 0o644, dir_fd=t.dir_fd)
            if existing is None and mode is not None:
                try:
                    os.fchmod(fd, mode)
                except BaseException:
                    os.close(fd)
                    raise
            return LocalWriteHandle(
                fd, t.dir_fd, t.name, t.parts, None, None, org_root=self._org_root_text, moves=moves
            )
        except BaseException:
            t.close()
            raise

    def remove(self, path: str) -> tuple[str, ...]:
        with self._target(path, follow=False) as t:
            s = t.lstat()
            if s is None or t.name is None:
                raise NotFound(f"no such file: {path}")
            if st.S_ISDIR(s.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory: use rmdir")
            # As an upload's rename over a file: the file is freed after the reply, not in it.
            with freed_after(self._spares, t.name, t.dir_fd):
                os.unlink(t.name, dir_fd=t.dir_fd)
            return t.parts

    def mkdir(self, path: str, mode: int | None = None) -> tuple[str, ...]:
        with self._target(path, follow=False) as t:
            if t.name is None:
                raise FileExistsError(errno.EEXIST, "directory already exists")
            os.mkdir(t.name, (mode if mode is not None else 0o755) & 0o777, dir_fd=t.dir_fd)
            return t.parts

    def rmdir(self, path: str) -> tuple[str, ...]:
        with self._target(path, follow=False) as t:
            if t.name is None or list(t.parts) == self.home_parts:
                raise PermissionDenied("the home directory cannot be removed")
            os.rmdir(t.name, dir_fd=t.dir_fd)
            return t.parts

    def rename(
        self, old: str, new: str, *, replace: bool
    ) -> tuple[tuple[str, ...], tuple[str, ...], FileInfo]:
        with self._target(old, follow=False) as src, self._target(new, follow=False) as dst:
            for t in (src, dst):
                if t.name is None or list(t.parts) == self.home_parts:
                    raise PermissionDenied("the home directory cannot be renamed")
            assert src.name is not None and dst.name is not None
            s = src.lstat()
            if s is None:
                raise NotFound(f"no such file: {old}")
            if st.S_ISDIR(s.st_mode):
                # Counted before it happens: an upload below that commits meanwhile looks again.
                _MOVES.moved()
            if not replace:
                # In one step: a check, then a rename, would replace a file that took the new
                # name between the two (another session, another node on shared storage).
                rename_noreplace(src.name, dst.name, src.dir_fd, dst.dir_fd)
                s = os.stat(dst.name, dir_fd=dst.dir_fd, follow_symlinks=False)
                return src.parts, dst.parts, _info(dst.name, dst.parts, s)
            if s.st_nlink > 1 and not st.S_ISDIR(s.st_mode):
                # Perhaps another name of the same file (a hard link), which rename(2) leaves
                # as it is, both names in place. A file of one link (most) costs no look.
                d = dst.lstat()
                if d is not None and os.path.samestat(s, d):
                    return src.parts, src.parts, _info(src.name, src.parts, s)
            os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)
            s = os.stat(dst.name, dir_fd=dst.dir_fd, follow_symlinks=False)
            return src.parts, dst.parts, _info(dst.name, dst.parts, s)

    def symlink(self, target: str, path: str) -> tuple[str, ...]:
        with self._target(path, follow=False) as t:
            if t.name is None:
                raise FileExistsError(errno.EEXIST, "already exists")
            link_dir = list(t.parts[:-1])
            if "\x00" in target:
                raise InvalidInput("a link target must not contain NUL characters")
            if target.startswith("/"):
                aim = client_to_org(self.home, target)
            else:
                aim = list(link_dir)
                for part in split(target):
                    if part == "..":
                        if not aim:
                            raise _outside()
                        aim.pop()
                    else:
                        aim.append(part)
            if not is_within(self.home_parts, aim):
                raise _outside()
            # Stored relative to the link's directory, so the host never sees a link that
            # points at one of its own absolute paths.
            common = 0
            while common < min(len(aim), len(link_dir)) and aim[common] == link_dir[common]:
                common += 1
            relative = [".."] * (len(link_dir) - common) + aim[common:]
            os.symlink("/".join(relative) or ".", t.name, dir_fd=t.dir_fd)
            return t.parts

    def link(self, old: str, new: str) -> tuple[tuple[str, ...], tuple[str, ...], FileInfo]:
        with self._target(old, follow=True) as src, self._target(new, follow=False) as dst:
            s = src.lstat()
            if s is None or src.name is None:
                raise NotFound(f"no such file: {old}")
            if not st.S_ISREG(s.st_mode):
                raise PermissionDenied("only regular files can be hard-linked")
            if dst.name is None:
                raise FileExistsError(errno.EEXIST, "already exists")
            os.link(
                src.name,
                dst.name,
                src_dir_fd=src.dir_fd,
                dst_dir_fd=dst.dir_fd,
                follow_symlinks=False,
            )
            s = os.stat(dst.name, dir_fd=dst.dir_fd, follow_symlinks=False)
            return src.parts, dst.parts, _info(dst.name, dst.parts, s)

    def setstat(
        self,
        path: str,
        *,
        mode: int | None = None,
        times: tuple[float, float] | None = None,
        size: int | None = None,
        follow: bool = True,
    ) -> None:
        with self._target(path, follow=follow) as t:
            s = t.lstat()
            if s is None:
                raise NotFound(f"no such file: {path}")
            if st.S_ISLNK(s.st_mode):
                # Only reachable with follow=False (lsetstat): links have no mode of their own.
                if times is not None and t.name is not None:
                    os.utime(t.name, times, dir_fd=t.dir_fd, follow_symlinks=False)
                return
            if mode is not None:
                # No set-id or sticky bits for files users upload.
                _chmod(t.name, t.dir_fd, mode & 0o777)
            if size is not None:
                writable = st.S_ISREG(s.st_mode)
                flags = (os.O_WRONLY if writable else os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC
                flags |= os.O_NONBLOCK
                fd = os.dup(t.dir_fd) if t.name is None else os.open(t.name, flags, dir_fd=t.dir_fd)
                try:
                    os.ftruncate(fd, size)
                finally:
                    os.close(fd)
            if times is not None:
                if t.name is None:
                    os.utime(t.dir_fd, times)
                else:
                    os.utime(t.name, times, dir_fd=t.dir_fd, follow_symlinks=False)


class DirectoryListing:
    """The entries of an open directory, read as they are asked for. It holds the directory's
    descriptor until read to the end or closed: a client may open a directory and never read
    it, so whoever holds a listing closes it."""

    def __init__(self, fd: int, parts: tuple[str, ...]) -> None:
        self._fd = fd
        self._parts = parts
        self._entries: Iterator[os.DirEntry[str]] | None = None

    def __iter__(self) -> DirectoryListing:
        return self

    def __next__(self) -> FileInfo:
        if self._fd < 0:
            raise StopIteration
        if self._entries is None:
            self._entries = os.scandir(self._fd)
        for entry in self._entries:
            try:
                s = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            return _info(entry.name, (*self._parts, entry.name), s)
        self.close()
        raise StopIteration

    def close(self) -> None:
        entries, self._entries = self._entries, None
        if entries is not None:
            entries.close()  # type: ignore[attr-defined]
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LocalReadHandle:
    def __init__(self, fd: int, org_parts: tuple[str, ...]) -> None:
        self.fd = fd
        self.org_parts = org_parts

    def pread(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def info(self) -> FileInfo:
        return _info(
            self.org_parts[-1] if self.org_parts else "", self.org_parts, os.fstat(self.fd)
        )

    def identity(self) -> tuple[int, int, int, int, int] | None:
        """(device, inode, size, mtime, ctime) of the open file. Any write, resize or change of
        times sets the ctime to the current time, and no client can set it (a client can set
        the mtime back). But file systems take that time from a coarse clock (ext4: the
        scheduler's tick), so a write right after this look could leave all five as they are:
        a file whose ctime is less than `SETTLED_SECONDS` old has none. (device, inode) names
        one file on this host, whichever organization's tree it is in."""
        s = os.fstat(self.fd)
        if s.st_ctime_ns > time.time_ns() - int(SETTLED_SECONDS * 1_000_000_000):
            return None
        return (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LocalWriteHandle:
    def __init__(
        self,
        fd: int,
        dir_fd: int,
        name: str,
        org_parts: tuple[str, ...],
        uploads_fd: int | None,
        temp_name: str | None,
        *,
        spares: SpareFiles | None = None,
        replaces: bool = False,
        exclusive: bool = False,
        mode: int | None = None,
        org_root: str | None = None,
        moves: int | None = None,
    ) -> None:
        self.fd = fd
        # The organization's root as the kernel names it, and the count of directories renamed
        # before this upload's path was walked: a rename since may have been of one of its
        # directories (`commit` then looks again).
        self._org_root = org_root
        self._moves = _MOVES.count if moves is None else moves
        # The permission bits the file gets at the commit (the client's at the open).
        self._mode = mode
        # Opened to create the file (SSH_FXF_EXCL): its commit must not replace one.
        self._exclusive = exclusive
        # Whether the name held a file when this upload began (whose cache `streamed` frees).
        self._replaces = replaces
        self._streaming = False
        # Frees a file this upload replaces after the rename (`SpareFiles.hold`).
        self._spares = spares
        self._dir_fd = dir_fd
        self._name = name
        self.org_parts = org_parts
        self._uploads_fd = uploads_fd
        self._temp_name = temp_name
        self.atomic = temp_name is not None

    def pwrite(self, offset: int, data: bytes) -> int:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            offset += written
            view = view[written:]
        return len(data)

    def pread(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def streamed(self, offset: int, size: int) -> None:
        """A large upload wrote these bytes, in order, and goes on (`Upload`, in an I/O thread).

        - The kernel starts writing them to disk now, not all at once at the rename: renaming a
          file over another makes ext4 allocate and start writing every byte still only in
          memory, 0.2 s of the close of a 512 MiB upload here, 0.06 s this way.
        - At the first call, the file this upload will replace gives up its cached pages. It is
          not read again once the upload lands, and its pages are what the new content then
          takes, instead of other files' cache or (in a virtual machine) fresh memory from the
          host: writing 512 MiB beside a cached 512 MiB file took 0.7-1.0 s of kernel time
          here, 0.1-0.2 s after this.
        """
        if not self._streaming:
            self._streaming = True
            if self._replaces and self._temp_name is not None:
                release_cache(self._name, self._dir_fd)
        start_writeback(self.fd, offset, size)

    def info(self) -> FileInfo:
        return _info(self._name, self.org_parts, os.fstat(self.fd))

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def fsync(self) -> None:
        os.fsync(self.fd)

    def commit(self) -> FileInfo:
        """Close and, for an atomic upload, rename into place; return the final file's info."""
        try:
            info = self.info()
            if self._temp_name is not None and self._uploads_fd is not None:
                mode = self._mode
                if mode is not None and st.S_IMODE(info.mode) != mode:
                    # Made 0644 (less the process's umask), as most uploads want: changed only
                    # when the client sent another mode with its open.
                    os.fchmod(self.fd, mode)
                    info = dataclasses.replace(info, mode=st.S_IFMT(info.mode) | mode)
                if self._exclusive:
                    self._link_into_place()
                else:
                    # A file this upload replaces is freed after the reply, not in the rename.
                    with freed_after(self._spares, self._name, self._dir_fd):
                        os.rename(
                            self._temp_name,
                            self._name,
                            src_dir_fd=self._uploads_fd,
                            dst_dir_fd=self._dir_fd,
                        )
                self._temp_name = None
            if self._moves != _MOVES.count:
                self.org_parts = self._where_now()
                info = dataclasses.replace(info, org_parts=self.org_parts)
            return info
        finally:
            self.abort()

    def _where_now(self) -> tuple[str, ...]:
        """This file's path in the organization as it is now: its directory (held open since
        the upload began) may have been renamed meanwhile, and the file went with it."""
        if self._org_root is None:
            return self.org_parts
        try:
            here = os.readlink(f"/proc/self/fd/{self._dir_fd}")
        except OSError:
            return self.org_parts
        root = self._org_root
        if here == root:
            return (self._name,)
        if not here.startswith(root + "/"):
            return self.org_parts
        return (*here[len(root) + 1 :].split("/"), self._name)

    def _link_into_place(self) -> None:
        """Put an exclusive upload in place only if its name is still free.

        The name was free at the open, but the upload stays invisible until now: another
        upload may have taken the name meanwhile, and a plain rename would replace that file."""
        assert self._temp_name is not None and self._uploads_fd is not None
        try:
            rename_noreplace(self._temp_name, self._name, self._uploads_fd, self._dir_fd)
        except FileExistsError:
            raise FileExistsError(
                errno.EEXIST, "the name was taken while this exclusive upload was open"
            ) from None

    def abort(self) -> None:
        """Close; an atomic upload that was not committed leaves nothing behind."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._temp_name is not None and self._uploads_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp_name, dir_fd=self._uploads_fd)
            self._temp_name = None
        for attr in ("_uploads_fd", "_dir_fd"):
            fd = getattr(self, attr)
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, attr, -1)


class _Moves:
    """How many directories this process has renamed. An upload holds its directory open; one
    that saw none renamed since it began knows its path without asking the kernel."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def moved(self) -> None:
        with self._lock:
            self.count += 1


_MOVES = _Moves()


def _chmod(name: str | None, dir_fd: int, mode: int) -> None:
    """Set the mode of `name` in `dir_fd` (of `dir_fd` itself for None), never through a link.

    The file is opened with `O_PATH | O_NOFOLLOW`, which needs no permission on it, and changed
    through its `/proc/self/fd` entry, which is that very file. An open for reading, and
    `fchmod`, would need read permission: a file made 0200 or a directory made 000 could never
    be given its mode back (the server does not run as root)."""
    if name is None:
        fd = os.dup(dir_fd)
    else:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if st.S_ISLNK(os.fstat(fd).st_mode):
            return  # turned into a link since it was looked at: links have no mode of their own
        try:
            os.chmod(f"/proc/self/fd/{fd}", mode)
        except FileNotFoundError:
            # No /proc: the way that needs read permission.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            readable = os.dup(dir_fd) if name is None else os.open(name, flags, dir_fd=dir_fd)
            try:
                os.fchmod(readable, mode)
            finally:
                os.close(readable)
    finally:
        os.close(fd)


def _renameat2() -> Any:
    """libc's `renameat2` (Linux, glibc 2.28), or None where there is none."""
    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    call.restype = ctypes.c_int
    return call


_RENAMEAT2 = _renameat2()
_RENAME_NOREPLACE = 1


def rename_noreplace(old: str, new: str, old_dir_fd: int, new_dir_fd: int) -> None:
    """Rename `old` to `new` unless `new` exists (FileExistsError), as one step where the
    kernel and the file system can (`RENAME_NOREPLACE`). Elsewhere: a file by `link` and
    `unlink`, which fail rather than replace too; a directory (which has no links) by a look,
    then a rename."""
    if _RENAMEAT2 is not None:
        if (
            _RENAMEAT2(
                old_dir_fd, os.fsencode(old), new_dir_fd, os.fsencode(new), _RENAME_NOREPLACE
            )
            == 0
        ):
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            if code == errno.EEXIST:
                raise FileExistsError(code, "the new name already exists")
            raise OSError(code, os.strerror(code))
    s = os.stat(old, dir_fd=old_dir_fd, follow_symlinks=False)
    if not st.S_ISDIR(s.st_mode):
        try:
            os.link(old, new, src_dir_fd=old_dir_fd, dst_dir_fd=new_dir_fd, follow_symlinks=False)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "the new name already exists") from None
        os.unlink(old, dir_fd=old_dir_fd)
        return
    try:
        os.stat(new, dir_fd=new_dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(old, new, src_dir_fd=old_dir_fd, dst_dir_fd=new_dir_fd)
        return
    raise FileExistsError(errno.EEXIST, "the new name already exists")


def _sync_file_range() -> Any:
    """libc's `sync_file_range` (Linux), or None where there is none."""
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return call


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, size: int) -> bool:
    """Have the kernel start writing bytes [offset, offset + size) of `fd` to disk, without
    waiting for it; whether it was asked (advice: a failure changes nothing but timing)."""
    if _SYNC_FILE_RANGE is None:
        return False
    return int(_SYNC_FILE_RANGE(fd, offset, size, _SYNC_FILE_RANGE_WRITE)) == 0


def release_cache(name: str, dir_fd: int) -> bool:
    """Drop the cached pages of regular file `name` in `dir_fd` (those already on disk); whether
    it was done. Advice only: a missing file or any error changes nothing."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        if not st.S_ISREG(os.fstat(fd).st_mode):
            return False
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except (OSError, AttributeError):
        return False
    finally:
        os.close(fd)


class LocalBackend:
    """Every organization's files under one directory of this machine."""

    blocking = False

    def __init__(
        self, files_root: Path, *, spares: SpareFiles | None = None, uploads: Path | None = None
    ) -> None:
        self.files_root = files_root
        self._spares = spares
        self._uploads = uploads or files_root / UPLOADS_DIR
        # The directory opened (device and inode), for `check()` to tell it from another one
        # at the same path; None when it does not exist yet (its first session makes it).
        self._opened = _identity(files_root)

    @classmethod
    def open(cls, files_root: Path, *, node: str = "local") -> LocalBackend:
        """The backend for `files_root`, rid of uploads a stopped process left behind, with
        files made ready for the next uploads (`storage/spares.py`). Temporary uploads and ready
        files live in directories of `node`'s own: nodes sharing `files_root` never take or
        remove each other's."""
        uploads, spares = files_root / UPLOADS_DIR / node, files_root / SPARES_DIR / node
        clean_stale_uploads(files_root, uploads=uploads, spares=spares)
        return cls(files_root, spares=SpareFiles(spares), uploads=uploads)

    def for_user(self, organization_id: str, home: str) -> LocalStorage:
        return LocalStorage(
            self.files_root, organization_id, home, spares=self._spares, uploads=self._uploads
        )

    def uploads_in_progress(self) -> list[str]:
        """The temporary files of the uploads under way (for checks and tests)."""
        found = [entry.name for entry in os.scandir(self._uploads) if entry.is_file()]
        if self._spares is not None:
            ready = self._spares.ready_names()
            found += [name for name in os.listdir(self._spares.directory) if name not in ready]
        return sorted(found)

    def check(self) -> str:
        """Whether `files_root` is still the writable directory this backend opened: a volume
        unmounted under it leaves the empty mount point (another directory), a read-only
        remount after an I/O error leaves it readable, and either would fail every upload."""
        try:
            found = os.stat(self.files_root)
        except FileNotFoundError:
            return "files root missing"
        except OSError:
            return "files root unreadable"  # EIO, ESTALE: a failing disk or a stale NFS handle
        if not st.S_ISDIR(found.st_mode):
            return "files root not a directory"
        if self._opened is not None and (found.st_dev, found.st_ino) != self._opened:
            return "files root replaced"
        try:
            flags = os.statvfs(self.files_root).f_flag
        except OSError:
            return "files root unreadable"
        return writable(flags, os.access(self.files_root, os.W_OK))

    def close(self) -> None:
        if self._spares is not None:
            spares, self._spares = self._spares, None
            spares.close()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def writable(statvfs_flags: int, access: bool) -> str:
    """The files root's writability from its file system's flags (`statvfs().f_flag`) and
    `access(W_OK)`: a read-only mount named as such, which no permission bit would tell root."""
    if statvfs_flags & os.ST_RDONLY:
        return "files root read-only"
    return "ok" if access else "files root not writable"


def clean_stale_uploads(
    files_root: Path, *, uploads: Path | None = None, spares: Path | None = None
) -> int:
    """Remove the temporary uploads this node left when it stopped mid-transfer (`uploads`), and
    its ready files (`spares`); run at start. Other nodes' directories are left alone; files
    directly under `<files_root>/.uploads/` (where every node wrote before uploads had a
    directory per node) are removed too."""
    shared = files_root / UPLOADS_DIR
    uploads = uploads or shared / "local"
    spares = spares or files_root / SPARES_DIR / "local"
    for directory in (shared, uploads, spares):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    removed = 0
    for directory in (shared, uploads, spares):
        for entry in os.scandir(directory):
            if not entry.name.endswith(".upload") or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                # Spare files never held data: only interrupted uploads are worth a line.
                removed += directory != spares
    if removed:
        log.info("removed %d interrupted upload(s)", removed)
    return removed


__all__ = [
    "DirectoryListing",
    "LocalBackend",
    "LocalReadHandle",
    "LocalStorage",
    "LocalWriteHandle",
    "clean_stale_uploads",
]
