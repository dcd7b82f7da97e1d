"""`sftp.max_file_size`: a write or a resize that would make a file larger is refused with a
status that names the limit, writes nothing, and the upload it belonged to is not kept; on local
disk and on S3 alike. What it guards against: one byte written at offset 2**40 makes a sparse
file that costs nothing on disk, but its close used to read a TiB of zeros to hash it."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from sftphook.config import Settings
from sftphook.storage.s3 import PART_SIZE, make_client
from tests.conftest import serving
from tests.sftp.conftest import PASSWORD, Server, reuse_host_keys, topics
from tests.sftp.test_s3_sftp import keys, pending_uploads, s3_options

# More than two parts of an S3 multipart upload, so that a refused upload has parts to abort.
LIMIT = 2 * PART_SIZE + 1000
FAR = 2**40


@asynccontextmanager
async def _serve(
    tmp_path: Path,
    client_key: tuple[Path, str],
    host_keys: Path,
    *,
    max_file_size: int,
    storage: dict[str, str] | None = None,
) -> AsyncIterator[Server]:
    settings = Settings.load(
        data_dir=tmp_path / "data",
        sftp={"host": "127.0.0.1", "port": 0, "max_file_size": max_file_size},
        http={"host": "127.0.0.1", "port": 0},
        storage=storage or {},
    )
    reuse_host_keys(settings, host_keys)
    async with serving(settings, frozenset({"sftp"})) as app:
        org = await app.accounts.resolve_organization(None)
        await app.accounts.add_user(org.id, "alice", password=PASSWORD, public_keys=[client_key[1]])
        server = Server(app=app, port=app.sftp.port, org_id=org.id, key_file=client_key[0])
        if storage is None:
            server.root.mkdir(parents=True, exist_ok=True)
        yield server


class Limited:
    """A server with `max_file_size = LIMIT`, and what an upload may leave behind there."""

    def __init__(self, server: Server, s3: tuple[Any, str] | None) -> None:
        self.server = server
        self.s3 = s3

    def leftovers(self) -> list[str]:
        """Uploads in progress: temporary files on disk, multipart uploads and objects on S3."""
        if self.s3 is None:
            return self.server.app.storage.uploads_in_progress()  # type: ignore[union-attr]
        client, bucket = self.s3
        return pending_uploads(client, bucket) + [
            key for key in keys(client, bucket) if not key.endswith("/")
        ]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.e2e)])
async def limited(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    client_key: tuple[Path, str],
    host_keys_cache: Path,
) -> AsyncIterator[Limited]:
    storage = None
    s3 = None
    if request.param == "s3":
        radosgw = request.getfixturevalue("radosgw")
        bucket = f"limit-{uuid.uuid4().hex[:12]}"
        storage = s3_options(radosgw, bucket)
        client = make_client(
            endpoint_url=radosgw.endpoint,
            region="us-east-1",
            access_key_id=radosgw.access_key,
            secret_access_key=radosgw.secret_key,
        )
        s3 = (client, bucket)
    async with _serve(
        tmp_path, client_key, host_keys_cache, max_file_size=LIMIT, storage=storage
    ) as server:
        yield Limited(server, s3)


async def _refused(call: Any, *words: str) -> str:
    with pytest.raises(asyncssh.SFTPFailure) as caught:
        await call
    for word in words:
        assert word in caught.value.reason, caught.value.reason
    return caught.value.reason


async def test_a_write_past_the_limit_fails_and_its_upload_is_not_kept(limited: Limited) -> None:
    limit_text = f"the file size limit is {LIMIT:,} bytes"
    async with await limited.server.connect() as conn, conn.start_sftp_client() as sftp:
        sparse = await sftp.open("sparse.bin", "wb")
        await _refused(sparse.write(b"x", FAR), limit_text, f"{FAR + 1:,} bytes")
        await _refused(sparse.close(), "the upload was not kept", "file size limit")

        # Up to the limit, then one byte more: the bytes before were written (and sent to S3
        # in parts), and are thrown away with the upload.
        full = await sftp.open("full.bin", "wb")
        await full.write(os.urandom(LIMIT), 0)
        await _refused(full.write(b"!", LIMIT), limit_text)
        await _refused(full.close(), "the upload was not kept")

        # The same, under a client's temporary name: nothing to rename afterwards.
        part = await sftp.open("late.csv.filepart", "wb")
        await _refused(part.write(b"late", LIMIT - 3), limit_text)
        await _refused(part.close(), "the upload was not kept")
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.rename("late.csv.filepart", "late.csv")

        names = set(await sftp.listdir(".")) - {".", ".."}
        assert names == set()
    assert limited.leftovers() == []
    assert await limited.server.events() == []


async def test_an_upload_of_exactly_the_limit_is_kept(limited: Limited) -> None:
    data = os.urandom(LIMIT)
    async with await limited.server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("exact.bin", "wb") as fh:
            await fh.write(data)
        # Written out of order, the last byte first: the same bound, the same file.
        async with sftp.open("reversed.bin", "wb") as fh:
            await fh.write(data[-1:], LIMIT - 1)
            await fh.write(data[:-1], 0)
        assert (await sftp.stat("exact.bin")).size == LIMIT
    events = await limited.server.events()
    assert topics(events) == [("file.created", "exact.bin"), ("file.created", "reversed.bin")]
    digest = hashlib.sha256(data).hexdigest()
    assert [(e.size, e.sha256) for e in events] == [(LIMIT, digest), (LIMIT, digest)]


async def test_a_resize_past_the_limit_is_refused_and_changes_nothing(limited: Limited) -> None:
    async with await limited.server.connect() as conn, conn.start_sftp_client() as sftp:
        fh = await sftp.open("small.txt", "wb")
        await fh.write(b"abc")
        await _refused(fh.truncate(FAR), "the file size limit", "this resize")
        # The upload goes on: a refused resize wrote nothing.
        await fh.write(b"def", 3)
        await fh.close()
        await _refused(sftp.truncate("small.txt", FAR), "the file size limit", "this resize")
        assert (await sftp.stat("small.txt")).size == 6
    events = await limited.server.events()
    assert [(e.topic, e.path, e.size) for e in events] == [("file.created", "small.txt", 6)]


async def test_appends_count_from_the_end_of_the_file(limited: Limited) -> None:
    """An append lands at the end whatever offset it names (asyncssh sends 0): the limit
    applies to where it lands, and on S3 it no longer overwrites the start of the file."""
    async with await limited.server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("log.txt", "wb") as fh:
            await fh.write(b"x" * (LIMIT - 10))
        fh = await sftp.open("log.txt", "ab")
        await _refused(fh.write(b"y" * 11, 0), "the file size limit", f"{LIMIT + 1:,} bytes")
        await _refused(fh.close(), "not kept")
        assert (await sftp.stat("log.txt")).size == LIMIT - 10
        async with sftp.open("log.txt", "ab") as fh:
            await fh.write(b"y" * 10, 0)
        async with sftp.open("log.txt", "rb") as fh:
            assert await fh.read(20, 0) == b"x" * 20
            assert await fh.read(20, LIMIT - 20) == b"x" * 10 + b"y" * 10
    events = await limited.server.events()
    assert [(e.topic, e.size) for e in events] == [
        ("file.created", LIMIT - 10),
        ("file.created", LIMIT),
        ("file.downloaded", LIMIT),
    ]


async def test_zero_means_no_limit(
    tmp_path: Path, client_key: tuple[Path, str], host_keys_cache: Path
) -> None:
    far = 64 * 1024 * 1024  # a hole of 64 MiB: cheap to hash, past a small limit
    async with _serve(tmp_path, client_key, host_keys_cache, max_file_size=0) as server:
        async with await server.connect() as conn, conn.start_sftp_client() as sftp:
            fh = await sftp.open("sparse.bin", "wb")
            await fh.write(b"x", far)
            await fh.close()
        events = await server.events()
    assert [(e.topic, e.size) for e in events] == [("file.created", far + 1)]
    assert events[0].sha256 == hashlib.sha256(bytes(far) + b"x").hexdigest()


def test_the_default_limit_is_64_gib_and_set_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings.load(data_dir=tmp_path).sftp.max_file_size == 64 * 1024**3
    monkeypatch.setenv("SFTPHOOK_SFTP__MAX_FILE_SIZE", "1048576")
    assert Settings.load(data_dir=tmp_path).sftp.max_file_size == 1024 * 1024
    monkeypatch.setenv("SFTPHOOK_SFTP__MAX_FILE_SIZE", "-1")
    with pytest.raises(ValueError, match="max_file_size"):
        Settings.load(data_dir=tmp_path)
