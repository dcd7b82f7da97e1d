"""Open files of an SFTP session: where the bytes move, and the SHA-256 of what was uploaded.

Small files are read and written on the event loop: a `pread` or `pwrite` of a few KiB costs
less than handing it to a thread. Once a handle has moved `INLINE_BYTES`, it switches to blocks
of `BLOCK` bytes done in the I/O threads: reads are fetched a block ahead, writes are gathered
and written (and hashed) one block behind, so a long transfer neither stalls the loop nor pays
a thread hop per packet. The calls made on the loop go through `Offload`, which sends them to the
threads too while the disk is slow. A handle of a blocking store (every call may wait on the
network) does all its I/O in the threads from the first byte.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sftphook.errors import FileTooLarge, SftphookError
from sftphook.sftp.offload import Offload
from sftphook.storage.base import FileInfo, ReadHandle, WriteHandle

_T = TypeVar("_T")

INLINE_BYTES = 512 * 1024
# Writes are gathered into blocks of this size; reads from local disk are fetched in blocks of
# READ_BLOCK, one block ahead: larger blocks mean fewer thread hand-offs per MiB sent. A network
# store reads BLOCK at a time, which keeps its memory bounded as it was.
BLOCK = 1024 * 1024
READ_BLOCK = 4 * 1024 * 1024
# A local upload up to this size is committed (closed and renamed into place) on the loop while
# commits are quick (`Offload`): the rename of a few KiB costs tens of microseconds, less than
# the round trip to a thread.
INLINE_COMMIT_BYTES = 64 * 1024

# The most a close, a link or a rename reads of a file beyond what its client sent, to take the
# file's SHA-256 again (a write in place, a new name for a file the server has no upload of in
# memory); past it the event has no SHA-256. Otherwise one small request (open an existing
# 50 GiB file for writing and close it; `ln -s` it) would make the server read the whole file,
# as many times as the client liked.
REHASH_LIMIT = 64 * 1024 * 1024
# The files whose SHA-256 read back is kept (`Digests`): about 200 bytes each.
DIGESTS_KEPT = 1024

Data = bytes | memoryview


class Download:
    """A file opened for reading."""

    def __init__(self, handle: ReadHandle, offload: Offload) -> None:
        self.handle = handle
        self.delivered = 0
        self._offload = offload
        self._executor = offload.executor
        inline = self._inline = not offload.blocking
        self._read_block = READ_BLOCK if inline else BLOCK
        self._blocks: dict[int, asyncio.Future[bytes]] = {}

    async def read(self, offset: int, size: int) -> Data:
        if self._inline and self.delivered < INLINE_BYTES and not self._blocks:
            data: Data = await self._offload.run("pread", self.handle.pread, offset, size)
        else:
            data = await self._read_blocks(offset, size)
        self.delivered += len(data)
        return data

    def _block(self, start: int) -> asyncio.Future[bytes]:
        future = self._blocks.get(start)
        if future is None:
            loop = asyncio.get_running_loop()
            size = self._read_block
            future = loop.run_in_executor(self._executor, self.handle.pread, start, size)
            self._blocks[start] = future
        return future

    async def _read_blocks(self, offset: int, size: int) -> Data:
        first = offset - offset % self._read_block
        end = offset + size
        # Blocks behind this read are done with (a few entries at most: cheap to scan).
        for start in [s for s in self._blocks if s < first]:
            self._blocks.pop(start).cancel()
        # The wanted block is asked for before the one read ahead: a streamed read then goes
        # on where the last one ended.
        wanted = self._block(first)
        ahead = first + self._read_block
        if ahead not in self._blocks:
            self._block(ahead)
        block = await wanted
        if end <= ahead or len(block) < self._read_block:
            # The common case, a read inside one block: a view, not a copy (the reply packet
            # copies it once anyway).
            return memoryview(block)[offset - first : end - first]
        pieces: list[Data] = [memoryview(block)[offset - first :]]
        start = ahead
        while start < end:
            block = await self._block(start)
            pieces.append(memoryview(block)[: end - start])
            if len(block) < self._read_block:
                break
            start += self._read_block
        return b"".join(pieces)

    def info(self) -> FileInfo:
        return self.handle.info()

    async def close(self) -> None:
        blocks = list(self._blocks.values())
        self._blocks.clear()
        for future in blocks:
            future.cancel()
        # A block already being read in a thread still holds the descriptor: let it finish.
        await asyncio.gather(*blocks, return_exceptions=True)
        await self._call(self.handle.close)

    async def _call(self, call: Callable[..., _T], *args: Any) -> _T:
        return await self._offload.run(call.__name__, call, *args)


class Upload:
    """A file opened for writing, hashed while it streams when written in order.

    `write` may be given a view of the received packet: the data is kept as it came (no copy on
    the event loop) and joined, written and hashed in an I/O thread, one block behind.
    """

    def __init__(
        self,
        handle: WriteHandle,
        offload: Offload,
        *,
        offset: int = 0,
        max_size: int = 0,
        append: bool = False,
        readable: bool = False,
    ) -> None:
        self.handle = handle
        # Whether it was opened for reading too (SSH_FXF_READ, which needs the read
        # permission): a handle written in place would otherwise read the file it holds.
        self.readable = readable
        self.received = 0
        # The size the file may reach (0: no limit), and for appends the size it has: when
        # opened, then the end of the last write or resize.
        self.max_size = max_size
        self._append = append
        self._size = handle.info().size if append else offset
        self._offload = offload
        self._executor = offload.executor
        self._inline = not offload.blocking
        self._sha = hashlib.sha256()
        # The next offset the running hash expects; None once the writes left that order.
        self._hash_at: int | None = offset if offset == 0 else None
        self._pending: list[Data] = []
        self._pending_size = 0
        self._pending_at = 0
        self._flushing: asyncio.Future[None] | None = None
        # Attributes set on the open handle (fsetstat), applied to the final name at close.
        self.attrs: Any = None
        # Why a write failed (no space left, an I/O error, a part the object store did not
        # take): the upload is then missing bytes, and its close must discard it rather than
        # put a partial file in place.
        self.failure: str | None = None

    async def write(self, offset: int, data: Data) -> int:
        if self._append:
            # SSH_FXF_APPEND: every write goes to the end, whatever offset it names (asyncssh
            # and others send 0). Local disk does that itself (O_APPEND); an S3 upload's spool
            # file is written where it is told.
            offset = self._size
        end = offset + len(data)
        if self.max_size and end > self.max_size:
            # Refused before anything is written. The upload now lacks bytes its client meant
            # it to have: it is discarded at close, like one whose write failed on disk.
            self.failure = "beyond the file size limit"
            raise self._too_large(end, "write")
        try:
            written = await self._write(offset, data)
        except (OSError, SftphookError) as exc:
            self.failure = _failure_text(exc)
            raise
        self._size = max(self._size, end)
        return written

    def _too_large(self, size: int, what: str) -> FileTooLarge:
        return file_too_large("/".join(self.handle.org_parts), self.max_size, size, what)

    async def _write(self, offset: int, data: Data) -> int:
        size = len(data)
        self.received += size
        hash_at = self._hash_at
        in_order = hash_at is not None and offset == hash_at + self._pending_size
        if (
            self._pending
            or self._flushing is not None
            or self.received > INLINE_BYTES
            or not self._inline
        ):
            if in_order:
                if not self._pending:
                    self._pending_at = offset
                self._pending.append(data)
                self._pending_size += size
                if self._pending_size >= BLOCK:
                    await self._flush_behind()
                return size
            await self.drain()
            hash_at = self._hash_at
        if in_order:
            self._sha.update(data)
            assert hash_at is not None
            self._hash_at = hash_at + size
        elif hash_at is not None:
            # Rewriting bytes already hashed, or leaving a hole: the hash is taken again at close.
            self._hash_at = None
        await self._call(self.handle.pwrite, offset, bytes(data))
        return size

    async def _call(self, call: Callable[..., _T], *args: Any) -> _T:
        return await self._offload.run(call.__name__, call, *args)

    async def pread(self, offset: int, size: int) -> bytes:
        await self.drain()
        return await self._call(self.handle.pread, offset, size)

    async def truncate(self, size: int) -> None:
        if self.max_size and size > self.max_size:
            # A resize is refused and changes nothing: the upload goes on as it was.
            raise self._too_large(size, "resize")
        await self.drain()
        await self._call(self.handle.truncate, size)
        self._size = size
        if self._hash_at is not None and size < self._hash_at:
            # Bytes already hashed are cut off: a write where the hash stopped would extend it
            # past zeros the hash never saw. The hash is taken again at close.
            self._hash_at = None

    async def fsync(self) -> None:
        await self.drain()
        await self._call(self.handle.fsync)

    async def _flush_behind(self) -> None:
        if self._flushing is not None:
            flushing, self._flushing = self._flushing, None
            await flushing
        pieces, at, size = self._pending, self._pending_at, self._pending_size
        self._pending = []
        self._pending_size = 0
        assert self._hash_at is not None
        self._hash_at += size
        loop = asyncio.get_running_loop()
        self._flushing = loop.run_in_executor(self._executor, self._write_and_hash, at, pieces)

    def _write_and_hash(self, offset: int, pieces: list[Data]) -> None:
        chunk = b"".join(pieces)
        self.handle.pwrite(offset, chunk)
        self._sha.update(chunk)
        self.handle.streamed(offset, len(chunk))

    async def drain(self) -> None:
        """Write out everything received so far (before a read, a stat, or the close)."""
        try:
            if self._pending:
                await self._flush_behind()
            if self._flushing is not None:
                flushing, self._flushing = self._flushing, None
                await flushing
        except (OSError, SftphookError) as exc:
            self.failure = _failure_text(exc)
            raise

    async def sha256(self) -> str | None:
        """The SHA-256 of the file as it is now: taken while it streamed if it was written in
        order from the start, else read from the file, unless that means reading more than
        `REHASH_LIMIT` bytes beyond what the client sent (then None)."""
        await self.drain()
        size = self.handle.info().size
        if self._hash_at is not None and self._hash_at == size:
            return self._sha.hexdigest()
        if size > self.received + REHASH_LIMIT:
            return None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, read_digest, self.handle.pread, size)

    async def commit(self) -> FileInfo:
        """Close and put the file in place (call after `sha256`); returns its final info."""
        if self._inline and self.received <= INLINE_COMMIT_BYTES:
            return await self._offload.run("commit", self.handle.commit)
        # Renaming a large file over an existing one makes ext4 write the new data out first
        # (auto_da_alloc): can take milliseconds, so not on the loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.handle.commit)

    async def abort(self) -> None:
        if self._flushing is not None:
            flushing, self._flushing = self._flushing, None
            await asyncio.gather(flushing, return_exceptions=True)
        await self._call(self.handle.abort)


def file_too_large(path: str, limit: int, size: int, what: str) -> FileTooLarge:
    """The refusal of a write or resize that would make `path` `size` bytes, past `limit`."""
    return FileTooLarge(
        f"{path}: the file size limit is {_size_text(limit)}: "
        f"this {what} would make the file {size:,} bytes"
    )


def _size_text(size: int) -> str:
    """`68,719,476,736 bytes (64 GiB)`: exact, and readable."""
    exact = f"{size:,} bytes"
    for unit, name in ((1024**4, "TiB"), (1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if size >= unit:
            return f"{exact} ({size / unit:.4g} {name})"
    return exact


def _failure_text(exc: OSError | SftphookError) -> str:
    if isinstance(exc, SftphookError):
        return exc.message
    return exc.strerror or type(exc).__name__


def read_digest(pread: Callable[[int, int], bytes], size: int) -> str | None:
    """The SHA-256 of a file of `size` bytes, read through `pread(offset, length)` in blocks;
    None if it does not hold exactly `size` bytes (another file was put in its place since its
    size was looked at). Reads at most one byte more than `size`, whatever the file has become."""
    sha = hashlib.sha256()
    offset = 0
    while offset <= size:
        chunk = pread(offset, min(BLOCK, size + 1 - offset))
        if not chunk:
            break
        sha.update(chunk)
        offset += len(chunk)
    return sha.hexdigest() if offset == size else None


class Digests:
    """The SHA-256s read back from files (`read_digest`), kept by the files' identities
    (`ReadHandle.identity`); the least recently used is forgotten past `DIGESTS_KEPT`.

    `REHASH_LIMIT` bounds one read, not how many: a symbolic link costs its client one small
    request, so a thousand links to one 64 MiB file would make the server read 64 GiB. With
    its digest kept, the same unchanged file is read once. Identities are those of one
    storage backend (the front's): keep one `Digests` per backend. Used from the I/O threads."""

    def __init__(self, kept: int = DIGESTS_KEPT) -> None:
        self._kept = kept
        self._digests: collections.OrderedDict[tuple[object, ...], tuple[int, str]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def read(self, handle: ReadHandle, size: int) -> str | None:
        """`read_digest` of the open file `handle`, looked at as `size` bytes (blocks): the
        digest kept for it if the file has now the identity it had when read, with that size.
        A digest read is kept only if the file's identity is the same after the read as before
        (a write meanwhile changes it)."""
        before = handle.identity()
        if before is not None:
            with self._lock:
                kept = self._digests.get(before)
                if kept is not None:
                    self._digests.move_to_end(before)
            if kept is not None and kept[0] == size:
                return kept[1]
        sha = read_digest(handle.pread, size)
        if sha is not None and before is not None and handle.identity() == before:
            with self._lock:
                self._digests[before] = (size, sha)
                self._digests.move_to_end(before)
                while len(self._digests) > self._kept:
                    self._digests.popitem(last=False)
        return sha

    def __len__(self) -> int:
        return len(self._digests)
