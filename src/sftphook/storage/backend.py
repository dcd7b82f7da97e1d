"""Opens the storage backend the settings name: once per process, before SFTP listens."""

from __future__ import annotations

import hashlib
import socket
from typing import TYPE_CHECKING

from sftphook.storage.base import StorageBackend
from sftphook.storage.local import LocalBackend

if TYPE_CHECKING:
    from sftphook.config import Settings


def open_backend(settings: Settings) -> StorageBackend:
    """The configured backend, checked and cleaned up; blocks (run it in a thread).

    Local disk: interrupted uploads are removed. S3: the bucket is checked (created if
    missing) and multipart uploads that a stopped process left behind are aborted. An
    unreachable store raises `StorageUnavailable` saying which endpoint and bucket.
    """
    cfg = settings.storage
    if cfg.backend == "s3":
        from sftphook.storage.s3 import S3Backend

        return S3Backend.open(cfg, spool_dir=settings.data_dir.resolve() / "spool")
    # Nodes may share one files_root: each keeps its ready files apart, named after its host and
    # data directory (the same across its restarts, so it clears its own leftovers only).
    node = hashlib.sha256(f"{socket.gethostname()}:{settings.data_dir.resolve()}".encode())
    return LocalBackend.open(settings.files_root, node=node.hexdigest()[:16])
