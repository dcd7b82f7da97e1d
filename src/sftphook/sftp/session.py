"""One SFTP or SCP session: turns each request into a storage call and each completed file
operation into an event, recorded before the reply that completes the operation is sent.

Storage calls run on the event loop when the store is local disk (microseconds each) and in the
front's I/O threads when it blocks on a network (`Storage.blocking`)."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import functools
import itertools
import logging
import stat as st
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

import asyncssh
from asyncssh.sftp import MAX_SFTP_READ_LEN

from sftphook.errors import NotFound, PermissionDenied, SftphookError
from sftphook.events import EventRecord, Topic
from sftphook.sftp.transfer import REHASH_LIMIT, Data, Download, Upload, file_too_large
from sftphook.storage.base import FileInfo, Storage
from sftphook.storage.paths import event_path, normalize_client

if TYPE_CHECKING:
    from sftphook.sftp.server import ConnectionState, SFTPFront

log = logging.getLogger(__name__)

_T = TypeVar("_T")
# Directory entries fetched per trip to an I/O thread when listing a blocking store.
_LIST_BATCH = 500

_OS_CODES = {
    errno.ENOENT: asyncssh.FX_NO_SUCH_FILE,
    errno.EACCES: asyncssh.FX_PERMISSION_DENIED,
    errno.EPERM: asyncssh.FX_PERMISSION_DENIED,
    errno.EEXIST: asyncssh.FX_FILE_ALREADY_EXISTS,
    errno.ENOSPC: asyncssh.FX_FAILURE,
    errno.ENOTEMPTY: asyncssh.FX_FAILURE,
    errno.ENOTDIR: asyncssh.FX_NO_SUCH_FILE,
    errno.EISDIR: asyncssh.FX_FAILURE,
    errno.ELOOP: asyncssh.FX_FAILURE,
    errno.EINVAL: asyncssh.FX_FAILURE,
    errno.ENAMETOOLONG: asyncssh.FX_FAILURE,
    errno.EXDEV: asyncssh.FX_OP_UNSUPPORTED,
}


# The specific classes matter: SCP tells "missing" from other failures by class.
_ERROR_CLASSES: dict[int, Callable[[str], asyncssh.SFTPError]] = {
    asyncssh.FX_NO_SUCH_FILE: asyncssh.SFTPNoSuchFile,
    asyncssh.FX_PERMISSION_DENIED: asyncssh.SFTPPermissionDenied,
    asyncssh.FX_FILE_ALREADY_EXISTS: asyncssh.SFTPFileAlreadyExists,
    asyncssh.FX_BAD_MESSAGE: asyncssh.SFTPBadMessage,
    asyncssh.FX_OP_UNSUPPORTED: asyncssh.SFTPOpUnsupported,
    asyncssh.FX_CONNECTION_LOST: asyncssh.SFTPConnectionLost,
}

_FILE_TYPES = {
    st.S_IFREG: asyncssh.FILEXFER_TYPE_REGULAR,
    st.S_IFDIR: asyncssh.FILEXFER_TYPE_DIRECTORY,
    st.S_IFLNK: asyncssh.FILEXFER_TYPE_SYMLINK,
}


def sftp_error(code: int, reason: str) -> asyncssh.SFTPError:
    return _ERROR_CLASSES.get(code, asyncssh.SFTPFailure)(reason)


def _fail(exc: BaseException, path: str) -> NoReturn:
    """Raise the SFTP status for `exc`; messages name client paths only, never host paths."""
    if isinstance(exc, SftphookError):
        raise sftp_error(exc.sftp_code, exc.message) from None
    if isinstance(exc, OSError):
        code = _OS_CODES.get(exc.errno or 0, asyncssh.FX_FAILURE)
        reason = exc.strerror or "operation failed"
        raise sftp_error(code, f"{path}: {reason}") from None
    if isinstance(exc, UnicodeError):
        raise asyncssh.SFTPFailure("file names must be UTF-8") from None
    if isinstance(exc, OverflowError):
        # Offsets and sizes are 64-bit unsigned on the wire, signed for the OS.
        raise asyncssh.SFTPFailure(f"{path}: offset or size out of range") from None
    raise exc


@contextlib.contextmanager
def _mapped(path: str) -> Iterator[None]:
    try:
        yield
    except asyncssh.SFTPError:
        raise
    except (SftphookError, OSError, UnicodeError, OverflowError) as exc:
        _fail(exc, path)


def _decode(path: bytes) -> str:
    try:
        return path.decode("utf-8")
    except UnicodeDecodeError:
        raise asyncssh.SFTPFailure("file names must be UTF-8") from None


# asyncssh's records keep their fields in the instance `__dict__`; `Record.__init__` sets each
# of SFTPAttrs' 24 fields with `setattr`, a quarter of a large listing's time. Filling the dict
# in one call makes the same object in a fifth of the time.
_ATTRS_DEFAULTS = dict(asyncssh.SFTPAttrs.__slots__)
_NAME_DEFAULTS = dict(asyncssh.SFTPName.__slots__)


def _attrs(info: FileInfo) -> asyncssh.SFTPAttrs:
    attrs = object.__new__(asyncssh.SFTPAttrs)
    attrs.__dict__.update(
        _ATTRS_DEFAULTS,
        type=_FILE_TYPES.get(st.S_IFMT(info.mode), asyncssh.FILEXFER_TYPE_SPECIAL),
        size=info.size,
        permissions=info.mode,
        atime=int(info.atime),
        mtime=int(info.mtime),
        nlink=info.nlink,
    )
    return attrs


def _name(filename: bytes, longname: bytes, attrs: asyncssh.SFTPAttrs) -> asyncssh.SFTPName:
    name = object.__new__(asyncssh.SFTPName)
    name.__dict__.update(_NAME_DEFAULTS, filename=filename, longname=longname, attrs=attrs)
    return name


# `ls -l`'s date column, per whole second of mtime and "recent" flag: the files of a directory
# share few distinct seconds, and localtime + strftime were a tenth of a listing's time.
@functools.lru_cache(maxsize=4096)
def _stamp(mtime: int, recent: bool) -> str:
    return time.strftime("%b %e %H:%M" if recent else "%b %e  %Y", time.localtime(mtime))


_filemode = functools.lru_cache(maxsize=256)(st.filemode)


def _longname(info: FileInfo, owner: str, now: float | None = None) -> str:
    """`ls -l`'s line for `info`; `owner` is already padded to the column (`_owner_column`)."""
    if now is None:
        now = time.time()
    stamp = _stamp(int(info.mtime), abs(now - info.mtime) < 180 * 86400)
    return f"{_filemode(info.mode)} {info.nlink:4d} {owner} {info.size:12d} {stamp} {info.name}"


def _owner_column(owner: str) -> str:
    return f"{owner:8.8s} {owner:8.8s}"


def _close_entries(entries: Iterator[FileInfo]) -> None:
    close = getattr(entries, "close", None)
    if close is not None:
        close()


class Listing:
    """An open directory handle: "." and "..", then the entries as the client reads them.

    The entries may hold the directory open; `close()` gives it back, whether or not the
    client read to the end (the handler calls it on the handle's close and at session end).
    """

    def __init__(
        self,
        here: FileInfo,
        entries: Iterator[FileInfo],
        owner: str,
        *,
        fetch: Callable[[Iterator[FileInfo]], Awaitable[list[FileInfo]]] | None = None,
        on_close: Callable[[Listing], None] | None = None,
    ) -> None:
        self._on_close = on_close
        self._owner = _owner_column(owner)
        self._now = time.time()
        self._dots = [dataclasses.replace(here, name=name) for name in (".", "..")]
        self._entries = entries
        # Set for stores whose listing blocks: entries then come a page at a time, off the loop.
        self._fetch = fetch
        self._page: collections.deque[FileInfo] = collections.deque()
        self._exhausted = False

    def __aiter__(self) -> Listing:
        return self

    async def __anext__(self) -> asyncssh.SFTPName:
        if self._dots:
            dot = self._dots.pop(0)
            return _name(
                dot.name.encode(), _longname(dot, self._owner, self._now).encode(), _attrs(dot)
            )
        info = await self._next_entry()
        if info is None:
            self.close()
            raise StopAsyncIteration
        return _name(
            info.name.encode("utf-8", "surrogateescape"),
            _longname(info, self._owner, self._now).encode("utf-8", "surrogateescape"),
            _attrs(info),
        )

    async def _next_entry(self) -> FileInfo | None:
        if self._fetch is None:
            return next(self._entries, None)
        if not self._page and not self._exhausted:
            page = await self._fetch(self._entries)
            self._exhausted = len(page) < _LIST_BATCH
            self._page.extend(page)
        return self._page.popleft() if self._page else None

    def close(self) -> None:
        self._dots = []
        self._page.clear()
        self._exhausted = True
        _close_entries(self._entries)
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self)


class SFTPSession(asyncssh.SFTPServer):
    """Serves one channel of an authenticated connection, as `SFTP` or `SCP`."""

    def __init__(
        self,
        chan: asyncssh.SSHServerChannel,
        front: SFTPFront,
        state: ConnectionState,
        storage: Storage,
    ) -> None:
        super().__init__(chan)
        self._chan = chan
        self._front = front
        self._state = state
        self._user = state.user
        self.protocol = "SFTP" if chan.get_subsystem() == "sftp" else "SCP"
        self._storage = storage
        self._inline = not storage.blocking
        self._permissions = frozenset(self._user.permissions.split(","))
        self._temp_suffixes = tuple(front.settings.sftp.temp_suffixes)
        self._open: set[Upload | Download] = set()
        # Directory handles whose listing still holds its directory open.
        self._listings: set[Listing] = set()
        self.max_handles = front.settings.sftp.max_open_handles
        self._closed = False
        front.session_opened(self)

    async def _io(self, call: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """Run a storage call: on the loop for local disk while such calls are quick, in an I/O
        thread otherwise (`sftp/offload.py`)."""
        return await self._front.offload.run(call.__name__, call, *args, **kwargs)

    # Events

    async def _record(
        self,
        topic: Topic,
        parts: tuple[str, ...],
        *,
        directory: bool = False,
        size: int | None = None,
        sha256: str | None = None,
        previous: tuple[str, ...] | None = None,
    ) -> None:
        event = EventRecord(
            organization_id=self._user.organization_id,
            topic=topic,
            actor_id=self._user.username,
            path=event_path(list(parts), directory=directory),
            previous_path=(
                event_path(list(previous), directory=directory) if previous is not None else None
            ),
            size=size,
            sha256=sha256,
            protocol=self.protocol,
            client_ip=self._state.client_ip,
            session_id=self._state.session_id,
        )
        try:
            await self._front.recorder.record(event)
        except Exception:
            log.exception("event %s for %s could not be recorded", topic, event.path)
            raise asyncssh.SFTPFailure("the operation was done but could not be recorded") from None

    def _require(self, permission: str, path: str) -> None:
        if permission not in self._permissions:
            raise asyncssh.SFTPPermissionDenied(f"{path}: you have no {permission} permission")

    def _check_handles(self, path: str) -> None:
        if len(self._open) + len(self._listings) >= self.max_handles:
            raise asyncssh.SFTPFailure(
                f"{path}: this session already has {self.max_handles} files and directories"
                " open, the most it may: close some first"
            )

    def _is_temp(self, parts: tuple[str, ...]) -> bool:
        if not parts or not parts[-1].endswith(self._temp_suffixes):
            return False
        name = parts[-1]
        return any(name.endswith(s) and len(name) > len(s) for s in self._temp_suffixes)

    # Paths and attributes

    def realpath(self, path: bytes) -> bytes:
        text = _decode(path)
        with _mapped(text):
            return ("/" + "/".join(normalize_client(text))).encode()

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        text = _decode(path)
        with _mapped(text):
            return _attrs(await self._io(self._storage.stat, text, follow=True))

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        text = _decode(path)
        with _mapped(text):
            return _attrs(await self._io(self._storage.stat, text, follow=False))

    async def _setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs, *, follow: bool) -> None:
        text = _decode(path)
        self._require("write", text)
        times = None
        if attrs.atime is not None and attrs.mtime is not None:
            times = (float(attrs.atime), float(attrs.mtime))
        limit = self._front.settings.sftp.max_file_size
        with _mapped(text):
            if limit and attrs.size is not None and attrs.size > limit:
                # Growing a file by a resize is cheap (it is sparse), but a later rename from
                # a temporary name reads every byte of it to hash it.
                raise file_too_large(text, limit, attrs.size, "resize")
            await self._io(
                self._storage.setstat,
                text,
                mode=attrs.permissions,
                times=times,
                size=attrs.size,
                follow=follow,
            )
            if attrs.size is not None:
                # Resized: no longer what an upload under a temporary name left there.
                parts = await self._io(self._storage.org_parts, text)
                self._front.take_upload(self._user.organization_id, parts)

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self._setstat(path, attrs, follow=True)

    async def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self._setstat(path, attrs, follow=False)

    async def statvfs(self, path: bytes) -> asyncssh.SFTPVFSAttrs:
        text = _decode(path)
        with _mapped(text):
            return asyncssh.SFTPVFSAttrs(*await self._io(self._storage.statvfs, text))

    async def fstatvfs(self, file_obj: object) -> asyncssh.SFTPVFSAttrs:
        with _mapped("file"):
            return asyncssh.SFTPVFSAttrs(*await self._io(self._storage.statvfs, "/"))

    async def readlink(self, path: bytes) -> bytes:
        text = _decode(path)
        with _mapped(text):
            return (await self._io(self._storage.readlink, text)).encode()

    # Directories

    async def opendir(self, path: bytes) -> Listing:
        text = _decode(path)
        self._require("list", text)
        self._check_handles(text)
        with _mapped(text):
            _parts, entries = await self._io(self._storage.listdir, text)
            try:
                here = await self._io(self._storage.stat, text, follow=True)
            except BaseException:
                _close_entries(entries)
                raise
        fetch = None
        if not self._inline:

            async def fetch(rest: Iterator[FileInfo]) -> list[FileInfo]:
                # A network store pages its listing: each page is fetched in a thread.
                with _mapped(text):
                    return await self._io(list, itertools.islice(rest, _LIST_BATCH))

        listing = Listing(
            here, entries, self._user.username, fetch=fetch, on_close=self._listings.discard
        )
        self._listings.add(listing)
        return listing

    def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        # Used by SCP (recursive sends); SFTP lists through opendir().
        async def names() -> AsyncIterator[asyncssh.SFTPName]:
            listing = await self.opendir(path)
            try:
                async for name in listing:
                    yield name
            finally:
                listing.close()

        return names()

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        text = _decode(path)
        self._require("write", text)
        with _mapped(text):
            parts = await self._io(self._storage.mkdir, text, attrs.permissions)
        await self._record(Topic.FILE_CREATED, parts, directory=True)

    async def rmdir(self, path: bytes) -> None:
        text = _decode(path)
        self._require("delete", text)
        with _mapped(text):
            parts = await self._io(self._storage.rmdir, text)
        await self._record(Topic.FILE_DELETED, parts, directory=True)

    # Files

    async def remove(self, path: bytes) -> None:
        text = _decode(path)
        self._require("delete", text)
        with _mapped(text):
            parts = await self._io(self._storage.remove, text)
        self._front.take_upload(self._user.organization_id, parts)
        if self._is_temp(parts):
            # Receivers never heard of a client-side temporary name: a client giving up on its
            # temporary upload, or removing a file it renamed to one (reported then as deleted).
            return
        await self._record(Topic.FILE_DELETED, parts)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, replace=False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, replace=True)

    async def _rename(self, oldpath: bytes, newpath: bytes, *, replace: bool) -> None:
        old, new = _decode(oldpath), _decode(newpath)
        self._require("write", new)
        with _mapped(old):
            before, after, info = await self._io(self._storage.rename, old, new, replace=replace)
        if before == after:
            # Renamed to itself, or to another name of the same file (posix-rename): nothing
            # changed, nothing to report.
            return
        org = self._user.organization_id
        # Files and links may have client-side temporary names; directories have none (their
        # mkdir was reported, whatever the name).
        named = not info.is_dir
        if named and self._is_temp(before) and not self._is_temp(after):
            # A client-side temporary name becoming the real one: the upload is complete now.
            upload = self._front.take_upload(org, before)
            if info.is_link:
                size, sha = await self._link_target_digest(new)
            else:
                size, sha = info.size, await self._sha256(new, info.size, upload)
                if sha is not None:
                    # Kept as an upload's: a rename back to a temporary name and out again
                    # (which sets the change time each time) is not read again.
                    self._front.remember_upload(org, after, (info.size, sha))
            await self._record(Topic.FILE_CREATED, after, size=size, sha256=sha)
            return
        pending = self._front.take_upload(org, before)
        # Whatever the new name held was replaced: an upload remembered for it is gone.
        self._front.take_upload(org, after)
        if pending is not None:
            self._front.remember_upload(org, after, pending)
        if named and self._is_temp(after):
            # Receivers never see a client-side temporary name: a file renamed from a final
            # name to one is gone for them (`file.created` again if it gets a final name).
            if not self._is_temp(before):
                await self._record(Topic.FILE_DELETED, before)
            # From one such name to another: they are told of the file when it gets its final
            # name, with the upload remembered (above) for the new one.
            return
        await self._record(
            Topic.FILE_RENAMED,
            after,
            directory=info.is_dir,
            # A file's size; a directory or a link has none (lstat's is its target's length).
            size=info.size if info.is_file else None,
            previous=before,
        )

    async def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        target, link = _decode(oldpath), _decode(newpath)
        self._require("write", link)
        with _mapped(link):
            parts = await self._io(self._storage.symlink, target, link)
        # A new name, as a hard link is: to a receiver, a file that appeared. Unseen under a
        # temporary name, as a file is.
        if self._is_temp(parts):
            return
        size, sha = await self._link_target_digest(link)
        await self._record(Topic.FILE_CREATED, parts, size=size, sha256=sha)

    async def link(self, oldpath: bytes, newpath: bytes) -> None:
        old, new = _decode(oldpath), _decode(newpath)
        self._require("write", new)
        self._require("read", old)
        with _mapped(new):
            source, parts, info = await self._io(self._storage.link, old, new)
        # A file that appears under a new name, as an upload that lands there. A client may put
        # its upload in place this way (link x.filepart to x, then remove x.filepart).
        org = self._user.organization_id
        upload = self._front.remembered_upload(org, source)
        if self._is_temp(parts):
            # Unseen until renamed to a final name, as an upload under such a name. The name
            # was free: anything remembered for it was of a file gone since.
            self._front.take_upload(org, parts)
            if upload is not None:
                self._front.remember_upload(org, parts, upload)
            return
        sha = await self._sha256(new, info.size, upload)
        if sha is not None:
            # Both names keep it, as an upload's, so that more links to the file (each sets
            # its change time, so `Digests` cannot tell it unchanged) and renames of them
            # through temporary names do not read it again.
            self._front.remember_upload(org, source, (info.size, sha))
            self._front.remember_upload(org, parts, (info.size, sha))
        await self._record(Topic.FILE_CREATED, parts, size=info.size, sha256=sha)

    async def _link_target_digest(self, path: str) -> tuple[int | None, str | None]:
        """The size and SHA-256 of the regular file that the symbolic link at `path` leads to
        now, as a hard link's (`_sha256`: none for a large file); none when it leads to no
        regular file inside the home (dangling, a directory, a loop, out of the home)."""
        try:
            target = await self._io(self._storage.stat, path, follow=True)
        except (NotFound, PermissionDenied, OSError):
            return None, None
        if not target.is_file:
            return None, None
        upload = self._front.remembered_upload(self._user.organization_id, target.org_parts)
        try:
            return target.size, await self._sha256(path, target.size, upload)
        except (asyncssh.SFTPError, SftphookError, OSError):
            # The file went (or became unreadable) between the two looks: the link is made
            # all the same, and now leads nowhere readable.
            return None, None

    async def _sha256(
        self, path: str, size: int, upload: tuple[int, str | None] | None
    ) -> str | None:
        """The SHA-256 of the file at `path`, `size` bytes: that of the upload remembered for
        it, unless the file is not that size any more (changed since, outside this server's
        view); then read from disk, up to `REHASH_LIMIT` bytes (None beyond)."""
        if upload is not None and upload[0] == size:
            return upload[1]
        if size > REHASH_LIMIT:
            return None
        with _mapped(path):
            handle = await self._io(self._storage.open_read, path)
        # The size was looked at before the open: the read stops past it, so that a large
        # file renamed onto `path` meanwhile is neither read whole nor given this size.
        return await self._front.hash_file(handle, size)

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        text = _decode(path)
        writing = bool(pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND))
        reading = bool(pflags & asyncssh.FXF_READ) or not writing
        if writing:
            self._require("write", text)
        if reading:
            self._require("read", text)
        self._check_handles(text)
        transfer: Upload | Download
        with _mapped(text):
            if writing:
                # Like every other metadata call: on the loop while creating files is quick
                # (40-100 us on an idle ext4 here), in a thread while the disk is busy.
                handle = await self._io(
                    self._storage.open_write,
                    text,
                    truncate=bool(pflags & asyncssh.FXF_TRUNC),
                    exclusive=bool(pflags & asyncssh.FXF_EXCL),
                    append=bool(pflags & asyncssh.FXF_APPEND),
                    read=reading,
                    mode=attrs.permissions,
                )
                offset = 0 if handle.atomic else handle.info().size
                if not handle.atomic:
                    # Written in place from now on: what an upload under a temporary name
                    # left there is not known any more (its close remembers it again).
                    self._front.take_upload(self._user.organization_id, handle.org_parts)
                transfer = Upload(
                    handle,
                    self._front.offload,
                    offset=offset,
                    max_size=self._front.settings.sftp.max_file_size,
                    append=bool(pflags & asyncssh.FXF_APPEND),
                    readable=reading,
                )
            else:
                reader = await self._io(self._storage.open_read, text)
                transfer = Download(reader, self._front.offload)
        self._open.add(transfer)
        return transfer

    # A view of a read-ahead block is returned as is: asyncssh copies it into the reply.
    async def read(self, file_obj: object, offset: int, size: int) -> Data:  # type: ignore[override]
        # A read may return less than asked: at most what `limits@openssh.com` announces, as
        # OpenSSH's server does. A client asking for gigabytes in one request gets 4 MiB.
        size = min(size, MAX_SFTP_READ_LEN)
        if isinstance(file_obj, Upload):
            if not file_obj.readable:
                raise asyncssh.SFTPPermissionDenied("file is open for writing only")
            with _mapped("file"):
                return await file_obj.pread(offset, size)
        assert isinstance(file_obj, Download)
        with _mapped("file"):
            return await file_obj.read(offset, size)

    async def write(self, file_obj: object, offset: int, data: Data) -> int:
        if not isinstance(file_obj, Upload):
            raise asyncssh.SFTPPermissionDenied("file is open for reading")
        with _mapped("file"):
            return await file_obj.write(offset, data)

    async def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        assert isinstance(file_obj, Upload | Download)
        if isinstance(file_obj, Upload):
            await file_obj.drain()
        with _mapped("file"):
            return _attrs(file_obj.handle.info())

    async def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        if not isinstance(file_obj, Upload):
            raise asyncssh.SFTPPermissionDenied("file is open for reading")
        await file_obj.drain()
        with _mapped("file"):
            if attrs.size is not None:
                await file_obj.truncate(attrs.size)
            # Mode and times of an upload are set on its final name after the close.
            file_obj.attrs = asyncssh.SFTPAttrs(
                permissions=attrs.permissions, atime=attrs.atime, mtime=attrs.mtime
            )

    async def fsync(self, file_obj: object) -> None:
        if isinstance(file_obj, Upload):
            with _mapped("file"):
                await file_obj.fsync()

    async def finish(self, file_obj: object) -> None:
        """A close from the client: commit the transfer and record its event."""
        assert isinstance(file_obj, Upload | Download)
        self._open.discard(file_obj)
        if isinstance(file_obj, Download):
            info = file_obj.info()
            await file_obj.close()
            if file_obj.delivered > 0:
                await self._record(Topic.FILE_DOWNLOADED, info.org_parts, size=info.size)
            return
        await self._finish_upload(file_obj)

    async def _finish_upload(self, upload: Upload) -> None:
        parts = upload.handle.org_parts
        if upload.failure is not None:
            # A write of this upload failed: what is on disk has holes. Nothing is kept.
            await upload.abort()
            raise asyncssh.SFTPFailure(
                f"{'/'.join(parts)}: the upload was not kept: a write failed ({upload.failure})"
            )
        try:
            with _mapped("/".join(parts)):
                sha = await upload.sha256()
                info = await upload.commit()
        except BaseException:
            await upload.abort()
            raise
        # Where the file landed: its directory may have been renamed while it was open.
        parts = upload.handle.org_parts
        attrs = getattr(upload, "attrs", None)
        if attrs is not None:
            with contextlib.suppress(asyncssh.SFTPError):
                await self._setstat_parts(parts, attrs)
        org = self._user.organization_id
        if self._is_temp(parts):
            self._front.remember_upload(org, parts, (info.size, sha))
            return
        # A new file under this name: a digest kept for the one it replaced is not its own.
        self._front.take_upload(org, parts)
        await self._record(Topic.FILE_CREATED, parts, size=info.size, sha256=sha)

    async def scp_file_ended(self, file_obj: object) -> None:
        """For an upload, return once the SCP client has sent something after the file's data
        (or its input ended, or the connection is closing): then `_scp_file_end` can tell how
        the file ended. The client is the one to act here: while this waits, the connection
        may be idle. (A download's client answers only after the server's own OK.)

        asyncssh's SCP closes (here: commits) the file it receives once it has read the size
        the `C` line announced, and reads the byte after the data only then. OpenSSH's `scp`
        whose local file shrank or could not be read sends that size anyway, padded with
        zeros, and then an error in place of the zero; one cut short (the connection dropped,
        or its input ended: an `scp` killed while its `ssh` lived on) sends nothing more.
        """
        if not isinstance(file_obj, Upload):
            return
        stream = getattr(self._chan, "_session", None)
        received = getattr(stream, "_recv_buf", {}).get(None)
        if stream is None or received is None:
            return
        # The byte usually came with the data: this waits only when it did not.
        while not any(received) and not stream._eof_received and not self._chan.is_closing():
            await stream._block_read(None)

    def _scp_file_end(self) -> Literal["whole", "error", "cut"]:
        """How the SCP client ended the file it sent (`scp_file_ended` waited for it), looked
        at without taking it from the stream: the zero byte that says it read it all, an
        error, or nothing (cut short)."""
        stream = getattr(self._chan, "_session", None)
        received = getattr(stream, "_recv_buf", {}).get(None)
        if stream is None or received is None:
            # Not the stream session this was written against: only a closing channel tells.
            return "cut" if self._chan.is_closing() else "whole"
        for item in received:
            if isinstance(item, Exception):
                return "cut"
            if item:
                return "whole" if item[:1] == b"\0" else "error"
        return "cut"

    async def _setstat_parts(self, parts: tuple[str, ...], attrs: asyncssh.SFTPAttrs) -> None:
        client = self._storage.client_path(parts)
        await self._setstat(client.encode(), attrs, follow=True)

    async def close(self, file_obj: object) -> None:
        """A handle still open when the session ends: nothing of it is kept or reported."""
        assert isinstance(file_obj, Upload | Download)
        if self.protocol == "SCP" and not self._chan.is_closing():
            # SCP has no close request of its own: its file closes are the completions, of an
            # upload only once its client has said that what it sent is the whole file.
            if isinstance(file_obj, Upload):
                await self.scp_file_ended(file_obj)  # at once: `_SCPFiles.close` waited
                end = self._scp_file_end()
                if end != "whole":
                    self._open.discard(file_obj)
                    await file_obj.abort()
                    if end == "cut":
                        raise asyncssh.SFTPConnectionLost("connection lost")
                    # The client's error comes next: asyncssh reads it and ends the transfer.
                    return
            await self.finish(file_obj)
            return
        self._open.discard(file_obj)
        if isinstance(file_obj, Upload):
            await file_obj.abort()
        else:
            await file_obj.close()

    async def exit(self) -> None:
        if self._closed:
            return
        self._closed = True
        for transfer in list(self._open):
            self._open.discard(transfer)
            if isinstance(transfer, Upload):
                await transfer.abort()
            else:
                await transfer.close()
        self._storage.close()
        self._front.session_closed(self)

    async def abort(self) -> None:
        """End this session (server shutdown or the user was revoked)."""
        self._chan.close()

    def __repr__(self) -> str:
        return f"<SFTPSession {self._user.username} {self.protocol} {self._state.session_id}>"

    def describe(self) -> dict[str, Any]:
        return {"user": self._user.username, "protocol": self.protocol}
