"""S3-compatible storage: an organization's files as objects under `<prefix><organization id>/`.

The same SFTP semantics as local disk, within what object stores can do:
- Uploads stream: bytes go to a local spool file, and each part of a multipart upload is sent as
  soon as the written prefix covers it, so no file is ever held in memory and a close only sends
  the tail. The object exists only once the multipart upload completes (atomic upload); an
  aborted upload is aborted on the server too.
- Reads are ranged GETs streamed sequentially; a seek reopens the range, of the same object
  (If-Match), or the read fails.
- Directories are prefixes. `mkdir` writes an empty marker object `dir/` so that empty
  directories survive; listings page through `ListObjectsV2` with a delimiter.
- Rename is copy then delete (prefix by prefix for a directory).
- No symbolic or hard links exist in an object store: creating one is refused, so there is
  nothing to escape through, and `..` is resolved as text at the home (paths.normalize_client).

Every method blocks on the network: callers run them off the event loop (`blocking = True`).
Errors of the store become domain errors: `StorageUnavailable` when it does not answer,
`PermissionDenied` when it refuses access, `StorageFull` when a quota is reached.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import errno
import functools
import hashlib
import logging
import os
import stat as st
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from sftphook.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    SftphookError,
    StorageFull,
    StorageUnavailable,
    Unsupported,
)
from sftphook.storage.base import FileInfo
from sftphook.storage.paths import client_to_org, org_to_client, split

if TYPE_CHECKING:
    from sftphook.config import StorageSettings

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")

FILE_MODE = st.S_IFREG | 0o644
DIR_MODE = st.S_IFDIR | 0o755
# S3 parts are at least 5 MiB (but the last); 8 MiB keeps requests few and memory flat.
PART_SIZE = 8 * 1024 * 1024
# Largest object a single CopyObject may copy; beyond it, copy in parts.
COPY_LIMIT = 5 * 1024**3
READ_AHEAD = 4 * 1024 * 1024
# S3's longest object key, in UTF-8 bytes: the store refuses a longer one only when it is
# written, which would fail an upload at its close as if the store were down.
KEY_LIMIT = 1024
# How long a session trusts that a directory it saw still exists: a listing costs tens of
# milliseconds, and an upload of many files into one directory asks again for each.
KNOWN_DIR_SECONDS = 5.0
# How long `S3Backend.check()` answers from its last look at the bucket: several balancers
# probing every second cost the store one request per period.
CHECK_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str = ""


def make_client(
    *,
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    max_connections: int = 32,
    connect_timeout: float = 10,
    read_timeout: float = 60,
    retries: int = 5,
) -> Any:
    """A botocore S3 client (thread-safe), path-style so any S3-compatible server works."""
    import botocore.session
    from botocore.config import Config

    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(
            s3={"addressing_style": "path"},
            max_pool_connections=max_connections,
            retries={"max_attempts": retries, "mode": "standard"},  # after the first
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Checksums that some S3-compatible servers do not understand yet.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _missing(exc: Exception) -> bool:
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


def _name_taken() -> FileExistsError:
    return FileExistsError(errno.EEXIST, "the name was taken while this exclusive upload was open")


def _domain_error(exc: Exception) -> SftphookError:
    """What a failed request means to the user; the details go to the log only."""
    code = _error_code(exc)
    log.warning("object store request failed: %s", exc)
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return PermissionDenied("the file store refused access: ask the operator")
    if code in ("QuotaExceeded",):
        # A quota of the bucket or of the store's user (Ceph radosgw): waiting will not help.
        return StorageFull("the file store is full (a quota is reached): ask the operator")
    if code in ("NoSuchBucket",):
        return StorageUnavailable("the file store's bucket is missing: ask the operator")
    if code in ("NoSuchKey",):
        # Removed by another session between a look at it and its use (a rename's copy, a
        # resume's read): the file is gone, which waiting will not change.
        return NotFound("no such file: it was removed meanwhile")
    return StorageUnavailable("the file store did not answer: try again in a moment")


def _store_errors(method: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(method)
    def translated(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise _domain_error(exc) from None

    return translated


class S3Backend:
    """Every organization's files in one bucket, through one client shared by all sessions."""

    blocking = True

    def __init__(
        self,
        client: Any,
        location: S3Location,
        spool_dir: Path | None = None,
        *,
        probe_client: Any = None,
    ) -> None:
        self.client = client
        self.location = location
        self.spool_dir = spool_dir
        # `check()`'s client: one attempt with short timeouts, so an endpoint that is down
        # is reported as such within a probe's deadline instead of retried for seconds.
        self._probe_client = probe_client or client
        self._check_lock = threading.Lock()
        self._checked: tuple[float, str] | None = None
        # Parts go to the store while the client keeps writing the next one.
        self._part_senders = ThreadPoolExecutor(max_workers=16, thread_name_prefix="s3-parts")
        if spool_dir is not None:
            spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    @classmethod
    def open(cls, cfg: StorageSettings, *, spool_dir: Path | None = None) -> S3Backend:
        """Connect, make sure the bucket exists, and abort uploads a stopped process left."""
        assert cfg.bucket is not None  # the settings refuse s3 without a bucket
        secret = cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None
        connect = functools.partial(
            make_client,
            endpoint_url=cfg.endpoint_url,
            region=cfg.region,
            access_key_id=cfg.access_key_id,
            secret_access_key=secret,
        )
        backend = cls(
            connect(),
            S3Location(cfg.bucket, cfg.prefix),
            spool_dir,
            probe_client=connect(max_connections=1, connect_timeout=1, read_timeout=1, retries=0),
        )
        try:
            backend.ensure_bucket(cfg.region)
            backend.abort_stale_uploads(cfg.stale_upload_seconds)
        except BaseException:
            backend.close()
            raise
        return backend

    def _where(self) -> str:
        endpoint = getattr(getattr(self.client, "meta", None), "endpoint_url", "")
        return f"bucket {self.location.bucket!r} at {endpoint}"

    def ensure_bucket(self, region: str) -> None:
        bucket = self.location.bucket
        try:
            self.client.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            if not _missing(exc) and _error_code(exc) != "NoSuchBucket":
                raise StorageUnavailable(
                    f"the object store refused {self._where()} ({_error_code(exc)}): check "
                    "storage.access_key_id and storage.secret_access_key"
                ) from None
        except BotoCoreError as exc:
            raise StorageUnavailable(
                f"cannot reach the object store for {self._where()}: {exc}"
            ) from None
        options: dict[str, Any] = {}
        if region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(Bucket=bucket, **options)
            log.info("created %s", self._where())
        except ClientError as exc:
            # Another node made it first.
            if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StorageUnavailable(
                    f"cannot create {self._where()} ({_error_code(exc)})"
                ) from None

    @_store_errors
    def abort_stale_uploads(self, idle_seconds: float) -> int:
        """Abort multipart uploads under the prefix with no part sent for `idle_seconds`:
        what a process that stopped mid-upload left. Uploads other nodes are sending go on."""
        now = datetime.datetime.now(datetime.UTC)
        limit = datetime.timedelta(seconds=idle_seconds)
        bucket = self.location.bucket
        aborted = 0
        uploads = self.client.get_paginator("list_multipart_uploads")
        for page in uploads.paginate(Bucket=bucket, Prefix=self.location.prefix):
            for upload in page.get("Uploads", []):
                last = upload["Initiated"]
                if now - last < limit:
                    continue
                parts = self.client.get_paginator("list_parts")
                try:
                    for listed in parts.paginate(
                        Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    ):
                        for part in listed.get("Parts", []):
                            last = max(last, part["LastModified"])
                except ClientError as exc:
                    if _missing(exc):
                        continue  # finished or aborted meanwhile
                    raise
                if now - last < limit:
                    continue
                with contextlib.suppress(ClientError):
                    self.client.abort_multipart_upload(
                        Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        if aborted:
            log.info("aborted %d interrupted upload(s) in %s", aborted, self._where())
        return aborted

    def for_user(self, organization_id: str, home: str) -> S3Storage:
        storage = S3Storage(
            self.client,
            self.location,
            organization_id,
            home,
            spool_dir=self.spool_dir,
            part_senders=self._part_senders,
        )
        storage.ensure_home()
        return storage

    def check(self) -> str:
        """Whether the bucket answers a HEAD, as last seen within `CHECK_SECONDS` (concurrent
        probes wait for one look rather than each sending their own)."""
        with self._check_lock:
            now = time.monotonic()
            if self._checked is not None and now - self._checked[0] < CHECK_SECONDS:
                return self._checked[1]
            state = self._head_bucket()
            if state != "ok" and (self._checked is None or self._checked[1] != state):
                log.warning("file store check: %s (%s)", state, self._where())
            self._checked = (time.monotonic(), state)
            return state

    def _head_bucket(self) -> str:
        try:
            self._probe_client.head_bucket(Bucket=self.location.bucket)
        except ClientError as exc:
            code = _error_code(exc)
            if _missing(exc) or code == "NoSuchBucket":
                return "bucket missing"
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return "bucket access refused"
            return "bucket unreachable"
        except BotoCoreError:
            return "bucket unreachable"
        return "ok"

    def close(self) -> None:
        self._part_senders.shutdown(wait=True, cancel_futures=True)
        for client in (self.client, self._probe_client):  # the same one twice does no harm
            with contextlib.suppress(Exception):
                client.close()


class S3Storage:
    """The files of one organization in a bucket, as one user confined to `home` sees them."""

    blocking = True

    def __init__(
        self,
        client: Any,
        location: S3Location,
        organization_id: str,
        home: str = "/",
        *,
        spool_dir: Path | None = None,
        part_senders: Executor | None = None,
    ) -> None:
        self._client = client
        self._bucket = location.bucket
        self._part_senders = part_senders
        self._root = f"{location.prefix}{organization_id}/"
        self.home = home
        self.home_parts = split(home)
        self._spool_dir = spool_dir
        self._known_dirs: dict[tuple[str, ...], float] = {}

    def _saw_dir(self, parts: tuple[str, ...]) -> None:
        self._known_dirs[parts] = time.monotonic() + KNOWN_DIR_SECONDS

    def _forget_dirs(self, parts: tuple[str, ...]) -> None:
        for known in [k for k in self._known_dirs if k[: len(parts)] == parts]:
            del self._known_dirs[known]

    def close(self) -> None:
        return None

    @_store_errors
    def ensure_home(self) -> None:
        """Give the home (and the directories above it) markers, so that they are listed."""
        home = tuple(self.home_parts)
        if not home:
            return
        found = self._client.list_objects_v2(
            Bucket=self._bucket, Prefix=self._dir_prefix(home), MaxKeys=1
        )
        if found.get("KeyCount", 0):
            return
        for depth in range(1, len(home) + 1):
            self._client.put_object(
                Bucket=self._bucket, Key=self._dir_prefix(home[:depth]), Body=b""
            )

    # Names

    def _parts(self, path: str) -> tuple[str, ...]:
        parts = tuple(client_to_org(self.home, path))
        for part in parts:
            if len(part.encode()) > 255:
                raise InvalidInput("a file name is longer than 255 bytes")
        self._check_length(self._key(parts))
        return parts

    def _check_length(self, key: str) -> None:
        if len(key.encode()) > KEY_LIMIT:
            raise InvalidInput(
                "the path is too long for the file store: an object's name, with the "
                f"organization's prefix, is at most {KEY_LIMIT:,} bytes"
            )

    def _key(self, parts: tuple[str, ...]) -> str:
        return self._root + "/".join(parts)

    def _dir_prefix(self, parts: tuple[str, ...]) -> str:
        return self._root + "".join(p + "/" for p in parts)

    def client_path(self, parts: tuple[str, ...]) -> str:
        return org_to_client(self.home, list(parts))

    def org_parts(self, path: str) -> tuple[str, ...]:
        return self._parts(path)

    # Reading

    def _head(self, parts: tuple[str, ...]) -> dict[str, Any] | None:
        if not parts:
            return None
        try:
            return dict(self._client.head_object(Bucket=self._bucket, Key=self._key(parts)))
        except Exception as exc:
            if _missing(exc):
                return None
            raise

    def _dir_exists(self, parts: tuple[str, ...]) -> bool:
        if list(parts) == self.home_parts or not parts:
            return True
        found = self._client.list_objects_v2(
            Bucket=self._bucket, Prefix=self._dir_prefix(parts), MaxKeys=1
        )
        exists = bool(found.get("KeyCount", 0))
        if exists:
            self._saw_dir(parts)
        return exists

    def _file_info(self, parts: tuple[str, ...], head: dict[str, Any]) -> FileInfo:
        mtime = head["LastModified"].timestamp()
        return FileInfo(
            name=parts[-1] if parts else "",
            org_parts=parts,
            size=int(head.get("ContentLength", head.get("Size", 0))),
            mode=FILE_MODE,
            mtime=mtime,
            atime=mtime,
        )

    def _dir_info(self, parts: tuple[str, ...]) -> FileInfo:
        return FileInfo(
            name=parts[-1] if parts else "",
            org_parts=parts,
            size=0,
            mode=DIR_MODE,
            mtime=0.0,
            atime=0.0,
            nlink=2,
        )

    @_store_errors
    def stat(self, path: str, *, follow: bool = True) -> FileInfo:
        parts = self._parts(path)
        head = self._head(parts)
        if head is not None:
            return self._file_info(parts, head)
        if self._dir_exists(parts):
            return self._dir_info(parts)
        raise NotFound(f"no such file: {path}")

    @_store_errors
    def listdir(self, path: str) -> tuple[tuple[str, ...], Iterator[FileInfo]]:
        parts = self._parts(path)
        if self._head(parts) is not None:
            raise NotADirectoryError("not a directory")
        if not self._dir_exists(parts):
            raise NotFound(f"no such directory: {path}")
        prefix = self._dir_prefix(parts)

        def entries() -> Iterator[FileInfo]:
            paginator = self._client.get_paginator("list_objects_v2")
            pages = iter(paginator.paginate(Bucket=self._bucket, Prefix=prefix, Delimiter="/"))
            # Files listed whose name a directory listed later could still have.
            files: collections.deque[str] = collections.deque()
            while True:
                try:
                    page = next(pages)
                except StopIteration:
                    return
                except (BotoCoreError, ClientError) as exc:
                    raise _domain_error(exc) from None
                # In the store's order (the page gives files and directories apart), so that a
                # directory `a/` comes after a file `a` of the same name, which hides it as it
                # does from `stat`: another program may have written both.
                found = [(c["Prefix"][len(prefix) :], None) for c in page.get("CommonPrefixes", [])]
                found += [(o["Key"][len(prefix) :], o) for o in page.get("Contents", [])]
                found.sort(key=lambda item: item[0])
                for name, obj in found:
                    # Files named before anything past `name/`: no directory can repeat them.
                    while files and files[0] + "/" < name:
                        files.popleft()
                    if obj is None:
                        name = name.rstrip("/")
                        if name and name not in files:
                            yield self._dir_info((*parts, name))
                    elif name:  # the directory's own marker has no name
                        files.append(name)
                        yield self._file_info((*parts, name), obj)

        return parts, entries()

    @_store_errors
    def open_read(self, path: str) -> S3ReadHandle:
        parts = self._parts(path)
        head = self._head(parts)
        if head is None:
            if self._dir_exists(parts):
                raise IsADirectoryError("is a directory")
            raise NotFound(f"no such file: {path}")
        return S3ReadHandle(
            self._client,
            self._bucket,
            self._key(parts),
            parts,
            self._file_info(parts, head),
            etag=head.get("ETag"),
        )

    def readlink(self, path: str) -> str:
        raise OSError(22, "not a symbolic link")

    def statvfs(self, path: str) -> tuple[int, ...]:
        # An object store has no fixed size; report a large, stable one.
        block = 4096
        blocks = 2**40 // block
        return (block, block, blocks, blocks, blocks, 2**32, 2**32, 2**32, 0, 0, 255)

    # Writing

    @_store_errors
    def open_write(
        self,
        path: str,
        *,
        truncate: bool,
        exclusive: bool,
        append: bool,
        read: bool,
        mode: int | None = None,
    ) -> S3WriteHandle:
        # Objects have no mode: `mode` is accepted and not kept, as setstat's.
        parts = self._parts(path)
        if not parts or list(parts) == self.home_parts:
            raise IsADirectoryError("is a directory")
        # A plain upload (truncate, not exclusive) replaces whatever object is there: no need
        # to ask for it, only whether a directory has that name.
        head = self._head(parts) if exclusive or not truncate else None
        if head is not None and exclusive:
            raise FileExistsError(17, "file already exists")
        if head is None and self._dir_exists(parts):
            raise IsADirectoryError("is a directory")
        self._require_parent(parts)
        handle = S3WriteHandle(
            self._client,
            self._bucket,
            self._key(parts),
            parts,
            spool_dir=self._spool_dir,
            part_senders=self._part_senders,
            exclusive=exclusive,
        )
        if head is not None and not truncate:
            # Appending or patching an object means rewriting it: start from its bytes. The
            # handle is nobody's until returned: a failed read-back must abort the parts it sent.
            try:
                handle.preload()
            except BaseException:
                handle.abort()
                raise
        return handle

    def _require_parent(self, parts: tuple[str, ...]) -> None:
        parent = parts[:-1]
        if list(parent) == self.home_parts or not parent:
            return
        if self._known_dirs.get(parent, 0.0) > time.monotonic():
            # Seen by this session moments ago: at worst a file lands in a directory another
            # session has just emptied and removed.
            return
        if self._head(parent) is not None:
            raise NotADirectoryError("a path component is a file")
        if not self._dir_exists(parent):
            raise NotFound("the parent directory does not exist")

    @_store_errors
    def remove(self, path: str) -> tuple[str, ...]:
        parts = self._parts(path)
        if self._head(parts) is None:
            if self._dir_exists(parts):
                raise IsADirectoryError("is a directory: use rmdir")
            raise NotFound(f"no such file: {path}")
        self._client.delete_object(Bucket=self._bucket, Key=self._key(parts))
        return parts

    @_store_errors
    def mkdir(self, path: str, mode: int | None = None) -> tuple[str, ...]:
        parts = self._parts(path)
        # A directory's marker is its key and a "/".
        self._check_length(self._dir_prefix(parts))
        if self._head(parts) is not None or (parts and self._dir_exists(parts)):
            raise FileExistsError(17, "directory already exists")
        self._require_parent(parts)
        self._client.put_object(Bucket=self._bucket, Key=self._dir_prefix(parts), Body=b"")
        self._saw_dir(parts)
        return parts

    @_store_errors
    def rmdir(self, path: str) -> tuple[str, ...]:
        parts = self._parts(path)
        if list(parts) == self.home_parts or not parts:
            raise PermissionDenied("the home directory cannot be removed")
        prefix = self._dir_prefix(parts)
        listed = self._client.list_objects_v2(Bucket=self._bucket, Prefix=prefix, MaxKeys=2)
        keys = [obj["Key"] for obj in listed.get("Contents", [])]
        if not keys:
            raise NotFound(f"no such directory: {path}")
        if keys != [prefix]:
            raise OSError(39, "directory not empty")
        self._client.delete_object(Bucket=self._bucket, Key=prefix)
        self._forget_dirs(parts)
        return parts

    @_store_errors
    def rename(
        self, old: str, new: str, *, replace: bool
    ) -> tuple[tuple[str, ...], tuple[str, ...], FileInfo]:
        src, dst = self._parts(old), self._parts(new)
        for parts in (src, dst):
            if not parts or list(parts) == self.home_parts:
                raise PermissionDenied("the home directory cannot be renamed")
        if dst[: len(src)] == src and len(dst) > len(src):
            raise InvalidInput("a directory cannot be moved inside itself")
        src_head = self._head(src)
        if src_head is None and not self._dir_exists(src):
            raise NotFound(f"no such file: {old}")
        dst_head = self._head(dst)
        dst_is_dir = dst_head is None and self._dir_exists(dst)
        if (dst_head is not None or dst_is_dir) and not replace:
            raise FileExistsError(17, "the new name already exists")
        if src != dst:
            # As rename(2): a file replaces a file and a directory an empty directory, nothing
            # else (copying the objects across would merge two trees, or give one name to both a
            # file and a directory).
            if src_head is not None and dst_is_dir:
                raise IsADirectoryError(21, "the new name is a directory")
            if src_head is None and dst_head is not None:
                raise NotADirectoryError(20, "the new name is a file")
            if src_head is None and dst_is_dir:
                prefix = self._dir_prefix(dst)
                listed = self._client.list_objects_v2(Bucket=self._bucket, Prefix=prefix, MaxKeys=2)
                if [obj["Key"] for obj in listed.get("Contents", [])] not in ([], [prefix]):
                    raise OSError(39, "directory not empty")
        if src == dst:
            # Renamed to itself: nothing changes (a copy onto itself and the delete after it
            # would lose the file).
            info = self._dir_info(src) if src_head is None else self._file_info(src, src_head)
            return src, dst, info
        self._require_parent(dst)
        if src_head is not None:
            self._copy(self._key(src), self._key(dst), int(src_head["ContentLength"]))
            self._client.delete_object(Bucket=self._bucket, Key=self._key(src))
            return src, dst, self.stat(self.client_path(dst))
        src_prefix, dst_prefix = self._dir_prefix(src), self._dir_prefix(dst)
        paginator = self._client.get_paginator("list_objects_v2")
        if len(dst_prefix.encode()) > len(src_prefix.encode()):
            # A longer name makes every key below it longer: refuse before copying anything,
            # not halfway with part of the tree under each name (a listing per 1,000 copies).
            for page in paginator.paginate(Bucket=self._bucket, Prefix=src_prefix):
                for obj in page.get("Contents", []):
                    self._check_length(dst_prefix + obj["Key"][len(src_prefix) :])
        self._forget_dirs(src)
        for page in paginator.paginate(Bucket=self._bucket, Prefix=src_prefix):
            for obj in page.get("Contents", []):
                target = dst_prefix + obj["Key"][len(src_prefix) :]
                self._copy(obj["Key"], target, int(obj["Size"]))
                self._client.delete_object(Bucket=self._bucket, Key=obj["Key"])
        return src, dst, self._dir_info(dst)

    def _copy(self, source: str, target: str, size: int) -> None:
        copy_source = {"Bucket": self._bucket, "Key": source}
        if size <= COPY_LIMIT:
            self._client.copy_object(Bucket=self._bucket, Key=target, CopySource=copy_source)
            return
        upload = self._client.create_multipart_upload(Bucket=self._bucket, Key=target)
        part_size = 512 * 1024 * 1024
        parts = []
        try:
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(start + part_size, size) - 1
                done = self._client.upload_part_copy(
                    Bucket=self._bucket,
                    Key=target,
                    UploadId=upload["UploadId"],
                    PartNumber=number,
                    CopySource=copy_source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"ETag": done["CopyPartResult"]["ETag"], "PartNumber": number})
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=target,
                UploadId=upload["UploadId"],
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=target, UploadId=upload["UploadId"]
                )
            raise

    def symlink(self, target: str, path: str) -> tuple[str, ...]:
        raise Unsupported("this server keeps files in an object store: no symbolic links")

    def link(self, old: str, new: str) -> tuple[tuple[str, ...], tuple[str, ...], FileInfo]:
        raise Unsupported("this server keeps files in an object store: no hard links")

    @_store_errors
    def setstat(
        self,
        path: str,
        *,
        mode: int | None = None,
        times: tuple[float, float] | None = None,
        size: int | None = None,
        follow: bool = True,
    ) -> None:
        info = self.stat(path)
        # Objects have no mode or settable times: accept them (clients set them after every
        # upload) and keep what the store reports.
        if size is not None and size != info.size:
            raise PermissionDenied("files in an object store cannot be resized in place")


class S3ReadHandle:
    """Sequential ranged GETs; a read elsewhere than where the last one ended reopens.

    Every GET asks for the object that was opened (If-Match its ETag): an object replaced or
    removed meanwhile fails the read (ESTALE) rather than continuing with another file's bytes."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        parts: tuple[str, ...],
        info: FileInfo,
        *,
        etag: str | None = None,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._if_same: dict[str, str] = {"IfMatch": etag} if etag else {}
        self.org_parts = parts
        self._info = info
        self._body: Any = None
        self._position = -1
        self._lock = threading.Lock()

    @_store_errors
    def pread(self, offset: int, size: int) -> bytes:
        if offset >= self._info.size or size <= 0:
            return b""
        with self._lock:
            if self._body is None or offset != self._position:
                self._open(offset)
            try:
                data = self._body.read(size)
                while len(data) < size and self._position + len(data) < self._info.size:
                    more = self._body.read(size - len(data))
                    if not more:
                        break
                    data += more
            except BaseException:
                # The stream broke (and may have lost bytes it read): the next read opens a new
                # range where it asks, rather than fail again on this one.
                self._close_body()
                raise
            self._position = offset + len(data)
            return bytes(data)

    def _open(self, offset: int) -> None:
        self._close_body()
        try:
            response = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={offset}-", **self._if_same
            )
        except ClientError as exc:
            if _error_code(exc) == "PreconditionFailed" or _missing(exc):
                raise OSError(
                    errno.ESTALE, "the file was replaced or removed while it was being read"
                ) from None
            raise
        self._body = response["Body"]
        self._position = offset

    def _close_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def info(self) -> FileInfo:
        return self._info

    def identity(self) -> None:
        """None: an object is read each time. The handle has its key, size and ETag without
        another request, but for an object uploaded whole the ETag is the MD5 of its bytes,
        and a client can make two contents of one size with one MD5: a SHA-256 kept under
        (key, ETag, size) could then be reported for the other content. Nor is there much to
        spare: an object store has no symbolic or hard links, the new names a client can
        make over and over for one small request each."""
        return None

    def close(self) -> None:
        with self._lock:
            self._close_body()


class S3WriteHandle:
    """An upload: a spool file on local disk, sent part by part as its written prefix grows.

    With `part_senders`, a part goes out in the background while the writes go on; one part at
    most is in flight, so a client faster than the store waits rather than piling up parts."""

    atomic = True

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        parts: tuple[str, ...],
        *,
        spool_dir: Path | None = None,
        part_senders: Executor | None = None,
        exclusive: bool = False,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        # An exclusive create must not replace an object that appeared while it was open: the
        # store checks that itself (If-None-Match: *) when it writes the object.
        self._exclusive = exclusive
        self._if_free: dict[str, str] = {"IfNoneMatch": "*"} if exclusive else {}
        self._part_senders = part_senders
        self._in_flight: Future[dict[str, Any]] | None = None
        self.org_parts = parts
        # Closed by commit() or abort(): the handle outlives any one block. On disk (the data
        # directory), not in /tmp, which may be memory.
        self._spool = tempfile.TemporaryFile(prefix="sftphook-s3-", dir=spool_dir)  # noqa: SIM115
        self._size = 0
        # Bytes [0, _contiguous) are all written; parts below _sent went to the server already.
        self._contiguous = 0
        self._extents: dict[int, int] = {}
        self._sent = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._dirty = False
        self._lock = threading.Lock()

    @_store_errors
    def preload(self) -> None:
        body = self._client.get_object(Bucket=self._bucket, Key=self._key)["Body"]
        offset = 0
        while chunk := body.read(PART_SIZE):
            self.pwrite(offset, chunk)
            offset += len(chunk)

    @_store_errors
    def pwrite(self, offset: int, data: bytes) -> int:
        with self._lock:
            if offset < self._sent:
                # Rewriting bytes already sent: the parts are stale, send everything at commit.
                self._dirty = True
            os.pwrite(self._spool.fileno(), data, offset)
            end = offset + len(data)
            self._size = max(self._size, end)
            self._extend(offset, end)
            if not self._dirty:
                while self._contiguous - self._sent >= PART_SIZE:
                    if self._part_senders is None:
                        self._send_part(self._sent, PART_SIZE)
                    else:
                        self._send_in_background(self._sent, PART_SIZE)
        return len(data)

    def streamed(self, offset: int, size: int) -> None:
        # The spool file is read back soon for its part: nothing to hint; parts leave as they
        # fill (`pwrite`).
        return None

    def _extend(self, start: int, end: int) -> None:
        if start > self._contiguous:
            self._extents[start] = max(end, self._extents.get(start, 0))
            return
        self._contiguous = max(self._contiguous, end)
        # Writes that arrived early may now join the prefix.
        while True:
            joined = [s for s in self._extents if s <= self._contiguous]
            if not joined:
                return
            for s in joined:
                self._contiguous = max(self._contiguous, self._extents.pop(s))

    def _send_part(self, start: int, length: int) -> None:
        self._settle_in_flight()
        self._start_upload()
        self._parts.append(self._upload_part(len(self._parts) + 1, start, length))
        self._sent = start + length

    def _send_in_background(self, start: int, length: int) -> None:
        assert self._part_senders is not None
        self._settle_in_flight()
        self._start_upload()
        number = len(self._parts) + 1
        self._in_flight = self._part_senders.submit(self._upload_part, number, start, length)
        self._sent = start + length

    def _settle_in_flight(self) -> None:
        """Wait for the part in flight; its failure is this call's, and a commit after it
        sends everything again from the spool (completing without that part would leave a
        gap in the object)."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            try:
                self._parts.append(in_flight.result())
            except BaseException:
                self._dirty = True
                raise

    def _start_upload(self) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = created["UploadId"]

    def _upload_part(self, number: int, start: int, length: int) -> dict[str, Any]:
        data = os.pread(self._spool.fileno(), length, start)
        sent = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        return {"ETag": sent["ETag"], "PartNumber": number}

    def pread(self, offset: int, size: int) -> bytes:
        return os.pread(self._spool.fileno(), size, offset)

    def info(self) -> FileInfo:
        name = self.org_parts[-1] if self.org_parts else ""
        return FileInfo(
            name=name, org_parts=self.org_parts, size=self._size, mode=FILE_MODE, mtime=0, atime=0
        )

    def truncate(self, size: int) -> None:
        with self._lock:
            self._spool.truncate(size)
            if size < self._sent:
                self._dirty = True
            self._size = size
            self._contiguous = min(self._contiguous, size)
            # Early writes past the new end are cut off with it: joined to the written prefix
            # later, they would count bytes the spool no longer has as sent.
            self._extents = {s: min(e, size) for s, e in self._extents.items() if s < size}

    def fsync(self) -> None:
        return None

    @_store_errors
    def commit(self) -> FileInfo:
        """Send what is left and complete the upload: only now does the object exist."""
        try:
            with self._lock:
                self._settle_in_flight()
                if self._dirty or self._contiguous < self._size:
                    # Holes or rewrites: start over from the spool (sparse bytes read as zero).
                    self._abort_upload()
                    self._parts, self._sent, self._dirty = [], 0, False
                    self._contiguous = self._size
                if self._upload_id is None and self._size - self._sent <= PART_SIZE:
                    self._spool.seek(0)
                    self._conditional(
                        self._client.put_object,
                        Bucket=self._bucket,
                        Key=self._key,
                        Body=self._spool.read(),
                    )
                else:
                    while self._size - self._sent > 0:
                        self._send_part(self._sent, min(PART_SIZE, self._size - self._sent))
                    if self._exclusive and self._object_exists():
                        # Some stores (Ceph radosgw 16) ignore the condition on completing a
                        # multipart upload: ask just before, which narrows the race to moments.
                        raise _name_taken()
                    try:
                        self._conditional(
                            self._client.complete_multipart_upload,
                            Bucket=self._bucket,
                            Key=self._key,
                            UploadId=self._upload_id,
                            MultipartUpload={"Parts": self._parts},
                        )
                    except (BotoCoreError, ClientError) as exc:
                        if not self._completed_before(exc):
                            raise
                    self._upload_id = None
            # The store answered for every byte: no HEAD needed to know the size.
            now = time.time()
            return FileInfo(
                name=self.org_parts[-1] if self.org_parts else "",
                org_parts=self.org_parts,
                size=self._size,
                mode=FILE_MODE,
                mtime=now,
                atime=now,
            )
        finally:
            self.abort()

    def _completed_before(self, exc: BotoCoreError | ClientError) -> bool:
        """Whether a completion that failed with `exc` was done all the same: its answer was
        lost (a timeout, a dropped connection), or lost and asked again by the client's retry,
        which finds the upload gone (`NoSuchUpload`). The object is then there with the ETag
        of exactly these parts (the MD5 of their MD5s, and their count)."""
        if isinstance(exc, ClientError) and _error_code(exc) != "NoSuchUpload":
            return False
        try:
            digests = b"".join(bytes.fromhex(str(p["ETag"]).strip('"')) for p in self._parts)
        except ValueError:
            return False  # a store whose ETags are not MD5s (encryption with KMS keys)
        md5 = hashlib.md5(digests, usedforsecurity=False).hexdigest()
        expected = f'"{md5}-{len(self._parts)}"'
        try:
            found = self._client.head_object(Bucket=self._bucket, Key=self._key)
        except (BotoCoreError, ClientError):
            return False
        if found.get("ETag") != expected:
            return False
        log.warning("the object store completed %s but its answer was lost", self._key)
        return True

    def _conditional(self, request: Callable[..., Any], **params: Any) -> None:
        try:
            request(**params, **self._if_free)
        except ClientError as exc:
            if self._exclusive and _error_code(exc) == "PreconditionFailed":
                raise _name_taken() from None
            raise

    def _object_exists(self) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=self._key)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def _abort_upload(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            # Aborting an upload with a part still arriving could leave that part behind.
            with contextlib.suppress(Exception):
                in_flight.result()
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )
            self._upload_id = None

    def abort(self) -> None:
        """Nothing of an upload that was not committed stays, locally or on the server."""
        # A session that ends aborts its uploads while a write may still run in an I/O thread:
        # one starting the multipart upload after this would leave it on the store.
        with self._lock:
            self._abort_upload()
            with contextlib.suppress(Exception):
                self._spool.close()


__all__ = ["S3Backend", "S3Location", "S3ReadHandle", "S3Storage", "S3WriteHandle", "make_client"]
