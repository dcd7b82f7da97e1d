"""Where the bytes of files live: a backend interface (`Storage`) and the local-disk backend."""

from sftphook.storage.base import FileInfo, ReadHandle, Storage, WriteHandle
from sftphook.storage.local import LocalStorage, clean_stale_uploads
from sftphook.storage.paths import client_to_org, org_to_client

__all__ = [
    "FileInfo",
    "LocalStorage",
    "ReadHandle",
    "Storage",
    "WriteHandle",
    "clean_stale_uploads",
    "client_to_org",
    "org_to_client",
]
