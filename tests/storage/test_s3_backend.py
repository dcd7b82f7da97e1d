"""Opening the S3 backend: the bucket checked or made, uploads of a crashed process aborted, and a
store that does not answer reported plainly (radosgw on 127.0.0.1)."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest

from sftphook.config import Settings, StorageSettings
from sftphook.errors import StorageUnavailable
from sftphook.storage import open_backend
from sftphook.storage.s3 import S3Backend, S3Storage
from tests.support.radosgw import Radosgw


def _storage(radosgw: Radosgw, bucket: str, **extra: object) -> StorageSettings:
    return StorageSettings(
        backend="s3",
        endpoint_url=radosgw.endpoint,
        bucket=bucket,
        access_key_id=radosgw.access_key,
        secret_access_key=radosgw.secret_key,
        prefix="tenants",
        **extra,
    )


def test_open_makes_the_bucket_and_aborts_only_idle_uploads_under_the_prefix(
    radosgw: Radosgw, tmp_path: Path
) -> None:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    first = S3Backend.open(_storage(radosgw, bucket), spool_dir=tmp_path / "spool")
    client = first.client
    try:
        client.head_bucket(Bucket=bucket)  # made at open
        crashed = client.create_multipart_upload(Bucket=bucket, Key="tenants/org/x.bin")
        client.upload_part(
            Bucket=bucket,
            Key="tenants/org/x.bin",
            UploadId=crashed["UploadId"],
            PartNumber=1,
            Body=b"a" * 1024,
        )
        client.create_multipart_upload(Bucket=bucket, Key="not-ours/y.bin")
        # A node starting now leaves an upload that just sent a part alone...
        assert first.abort_stale_uploads(idle_seconds=600) == 0
        time.sleep(1.1)
        # ...and aborts one idle for longer than the limit, under its prefix only.
        second = S3Backend.open(
            _storage(radosgw, bucket, stale_upload_seconds=1), spool_dir=tmp_path / "spool"
        )
        second.close()
        left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [u["Key"] for u in left] == ["not-ours/y.bin"]
    finally:
        first.close()


def test_for_user_gives_the_home_and_its_parents_markers(radosgw: Radosgw, tmp_path: Path) -> None:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    settings = Settings.load(data_dir=tmp_path / "data", storage=_storage(radosgw, bucket))
    backend = open_backend(settings)
    try:
        assert backend.blocking
        storage = backend.for_user("org", "/partners/acme")
        assert isinstance(storage, S3Storage)
        admin = backend.for_user("org", "/")
        assert [e.name for e in admin.listdir("/")[1]] == ["partners"]
        assert [e.name for e in admin.listdir("/partners")[1]] == ["acme"]
        assert list(storage.listdir("/")[1]) == []
    finally:
        backend.close()


def test_an_unreachable_store_is_reported_with_its_address_and_no_secret(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    cfg = StorageSettings(
        backend="s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        bucket="files",
        access_key_id="AKIDEXAMPLE",
        secret_access_key="do-not-print-me",
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as caught:
        S3Backend.open(cfg, spool_dir=tmp_path / "spool")
    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "'files'" in message
    assert "do-not-print-me" not in message
