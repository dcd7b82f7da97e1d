"""Where the bytes of files live: a backend interface (`Storage`), local disk, and S3."""

from sftphook.storage.backend import open_backend
from sftphook.storage.base import FileInfo, ReadHandle, Storage, StorageBackend, WriteHandle
from sftphook.storage.local import LocalBackend, LocalStorage, clean_stale_uploads
from sftphook.storage.paths import client_to_org, org_to_client

__all__ = [
    "FileInfo",
    "LocalBackend",
    "LocalStorage",
    "ReadHandle",
    "Storage",
    "StorageBackend",
    "WriteHandle",
    "clean_stale_uploads",
    "client_to_org",
    "open_backend",
    "org_to_client",
]
