"""Opening the S3 backend: the bucket checked or made, uploads of a crashed process aborted, and a
store that does not answer reported plainly (radosgw on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sftphook.config import Settings, StorageSettings
from sftphook.errors import StorageUnavailable
from sftphook.storage import open_backend, s3
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


def test_check_heads_the_bucket_and_answers_from_its_last_look_for_a_few_seconds(
    radosgw: Radosgw, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    backend = S3Backend.open(_storage(radosgw, bucket), spool_dir=tmp_path / "spool")
    try:
        assert backend.check() == "ok"
        backend.client.delete_bucket(Bucket=bucket)
        assert backend.check() == "ok"  # the last look, not a request per probe
        monkeypatch.setattr(s3, "CHECK_SECONDS", 0.0)
        assert backend.check() == "bucket missing"
    finally:
        backend.close()


def test_check_of_a_store_that_stops_answering_says_so_within_a_probe_deadline(
    radosgw: Radosgw, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend's own client waits a minute for an answer and retries; its check tries once,
    with short timeouts, and says nothing of where the store is or how it signs in."""
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    monkeypatch.setattr(s3, "CHECK_SECONDS", 0.0)
    with _forwarded(radosgw.endpoint) as store:
        cfg = _storage(radosgw, bucket).model_copy(update={"endpoint_url": store.endpoint})
        backend = S3Backend.open(cfg, spool_dir=tmp_path / "spool")
        try:
            assert backend.check() == "ok"
            store.silence()  # connections accepted, requests never answered: a hung gateway
            started = time.monotonic()
            assert backend.check() == "bucket unreachable"
            assert time.monotonic() - started < 2
        except BaseException:
            backend.close()
            raise
    try:
        started = time.monotonic()  # the port closed: refused at once
        assert backend.check() == "bucket unreachable"
        assert time.monotonic() - started < 2
    finally:
        backend.close()


class _Forwarder:
    """An endpoint on 127.0.0.1 that passes connections on to another until `silence()`, then
    accepts them and answers nothing; `close()` closes its port and cuts its connections."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets = [self._listener]
        self._passing = threading.Event()
        self._passing.set()
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def silence(self) -> None:
        self._passing.clear()

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                near, _ = self._listener.accept()
                far = socket.create_connection(self._target)
                self._sockets += (near, far)
                for source, sink in ((near, far), (far, near)):
                    threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if self._passing.is_set():
                    sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def _forwarded(target: str) -> Iterator[_Forwarder]:
    forwarder = _Forwarder(target)
    try:
        yield forwarder
    finally:
        forwarder.close()
