"""SFTP on S3-compatible storage, end to end: real clients, sftphook with `storage.backend=s3`,
and a real S3 server (Ceph radosgw on 127.0.0.1). Each test has a bucket of its own."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from sftphook.app import App
from sftphook.config import Settings
from sftphook.storage import s3
from sftphook.storage.s3 import PART_SIZE, make_client
from sftphook.store.models import Event
from tests.conftest import require_binary, serving
from tests.sftp.conftest import PASSWORD, Server, reuse_host_keys, run
from tests.support.radosgw import Radosgw

pytestmark = pytest.mark.e2e

PREFIX = "tenants/"


def s3_options(radosgw: Radosgw, bucket: str) -> dict[str, str]:
    return {
        "backend": "s3",
        "endpoint_url": radosgw.endpoint,
        "bucket": bucket,
        "access_key_id": radosgw.access_key,
        "secret_access_key": radosgw.secret_key,
        "prefix": PREFIX,
    }


@pytest.fixture(scope="module")
def s3_client(radosgw: Radosgw) -> Any:
    return make_client(
        endpoint_url=radosgw.endpoint,
        region="us-east-1",
        access_key_id=radosgw.access_key,
        secret_access_key=radosgw.secret_key,
    )


@pytest.fixture
def bucket() -> str:
    # Created by sftphook itself when it starts.
    return f"sftp-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_settings(tmp_path: Path, radosgw: Radosgw, bucket: str) -> Settings:
    return Settings.load(
        data_dir=tmp_path / "data",
        sftp={"host": "127.0.0.1", "port": 0},
        http={"host": "127.0.0.1", "port": 0},
        storage=s3_options(radosgw, bucket),
    )


@pytest.fixture
async def s3_server(
    s3_settings: Settings, client_key: tuple[Path, str], host_keys_cache: Path
) -> AsyncIterator[Server]:
    reuse_host_keys(s3_settings, host_keys_cache)
    async with serving(s3_settings, frozenset({"sftp"})) as app:
        org = await app.accounts.resolve_organization(None)
        await app.accounts.add_user(org.id, "alice", password=PASSWORD, public_keys=[client_key[1]])
        yield Server(app=app, port=app.sftp.port, org_id=org.id, key_file=client_key[0])


async def test_readyz_of_an_s3_node_answers_503_once_its_bucket_is_gone(
    s3_server: Server, s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s3_server.app.http_port}") as client:
        answer = await client.get("/readyz")
        assert answer.status_code == 200, answer.text
        assert answer.json()["storage"] == "ok"
        s3_client.delete_bucket(Bucket=bucket)  # empty: nobody has logged in
        monkeypatch.setattr(s3, "CHECK_SECONDS", 0.0)  # no wait for the last look to age
        answer = await client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["storage"] == "bucket missing"


def keys(client: Any, bucket: str) -> list[str]:
    found: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found += [o["Key"] for o in page.get("Contents", [])]
    return sorted(found)


def pending_uploads(client: Any, bucket: str) -> list[str]:
    listed = client.list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in listed.get("Uploads", [])]


async def eventually(check: Callable[[], bool], seconds: float = 20) -> None:
    for _ in range(int(seconds * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the condition did not become true in time")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_openssh_sftp_does_every_operation_with_the_right_events(
    s3_server: Server, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    sftp = require_binary("sftp")
    local = tmp_path / "local"
    local.mkdir()
    a = os.urandom(300_000)
    b = os.urandom(PART_SIZE + 777)  # more than one multipart part
    (local / "a.csv").write_bytes(a)
    (local / "b.bin").write_bytes(b)
    batch = tmp_path / "batch"
    batch.write_text(
        f"""mkdir inbound
put {local}/a.csv inbound/a.csv
put {local}/b.bin inbound/b.bin.filepart
rename inbound/b.bin.filepart inbound/b.bin
ls -l inbound
get inbound/a.csv {local}/a.back
rename inbound/a.csv inbound/a2.csv
mkdir inbound/sub
put {local}/a.csv inbound/sub/c.csv
rename inbound outbound
-symlink outbound/a2.csv link
-ln outbound/a2.csv hard
df
rm outbound/a2.csv
rm outbound/sub/c.csv
rmdir outbound/sub
ls -l outbound
"""
    )
    done = await run(
        [sftp, "-b", str(batch), "-P", str(s3_server.port), *s3_server.ssh_options(),
         "alice@127.0.0.1"],
        limit=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (local / "a.back").read_bytes() == a
    # Links are refused with a status that says why, not a vague failure.
    assert done.stderr.lower().count("operation unsupported") == 2, done.stderr
    assert "b.bin" in done.stdout and "a.csv" in done.stdout
    assert re.search(r"\d+\s+\d+\s+\d+\s+\d+%", done.stdout), done.stdout  # df answered

    events = await s3_server.events()
    got = [(e.topic, e.path, e.previous_path) for e in events]
    assert got == [
        ("file.created", "inbound/", None),
        ("file.created", "inbound/a.csv", None),
        ("file.created", "inbound/b.bin", None),
        ("file.downloaded", "inbound/a.csv", None),
        ("file.renamed", "inbound/a2.csv", "inbound/a.csv"),
        ("file.created", "inbound/sub/", None),
        ("file.created", "inbound/sub/c.csv", None),
        ("file.renamed", "outbound/", "inbound/"),
        ("file.deleted", "outbound/a2.csv", None),
        ("file.deleted", "outbound/sub/c.csv", None),
        ("file.deleted", "outbound/sub/", None),
    ]
    created = {e.path: (e.size, e.sha256) for e in events if e.topic == "file.created"}
    assert created["inbound/a.csv"] == (len(a), sha(a))
    assert created["inbound/b.bin"] == (len(b), sha(b))

    root = f"{PREFIX}{s3_server.org_id}/"
    assert keys(s3_client, bucket) == [f"{root}outbound/", f"{root}outbound/b.bin"]
    assert pending_uploads(s3_client, bucket) == []
    body = s3_client.get_object(Bucket=bucket, Key=f"{root}outbound/b.bin")["Body"].read()
    assert sha(body) == sha(b)


async def test_asyncssh_client_lists_pages_refuses_links_and_interrupted_uploads_vanish(
    s3_server: Server, s3_client: Any, bucket: str
) -> None:
    root = f"{PREFIX}{s3_server.org_id}/"
    async with await s3_server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.mkdir("many")
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda i: s3_client.put_object(
                        Bucket=bucket, Key=f"{root}many/f{i:05d}", Body=b"x"
                    ),
                    range(1005),  # more than one page of 1000
                )
            )
        names = await sftp.listdir("many")
        assert len(set(names) - {".", ".."}) == 1005
        assert (await sftp.stat("many/f01004")).size == 1

        data = os.urandom(3 * 1024 * 1024 + 5)
        async with sftp.open("up.bin", "wb") as fh:
            await fh.write(data)
        async with sftp.open("up.bin", "rb") as fh:
            assert await fh.read() == data

        with pytest.raises(asyncssh.SFTPOpUnsupported, match="object store"):
            await sftp.symlink("up.bin", "link")
        with pytest.raises(asyncssh.SFTPOpUnsupported):
            await sftp.link("up.bin", "hard")
        vfs = await sftp.statvfs("/")
        assert vfs.bsize > 0 and vfs.bavail > 0

    events = await s3_server.events()
    created = [e for e in events if e.topic == "file.created" and e.path == "up.bin"]
    assert [(e.size, e.sha256) for e in created] == [(len(data), sha(data))]

    # An upload cut off mid-transfer, after parts reached the store, leaves nothing behind.
    conn = await s3_server.connect()
    sftp = await conn.start_sftp_client()
    fh = await sftp.open("cut.bin", "wb")
    chunk = os.urandom(1024 * 1024)
    for i in range(2 * PART_SIZE // len(chunk) + 2):
        await fh.write(chunk, i * len(chunk))
    await eventually(lambda: bool(pending_uploads(s3_client, bucket)))
    conn.abort()
    await eventually(
        lambda: not s3_server.app.sftp.sessions and not pending_uploads(s3_client, bucket)
    )
    assert f"{root}cut.bin" not in keys(s3_client, bucket)
    assert not [e for e in await s3_server.events() if e.path == "cut.bin"]


async def test_rename_to_its_own_name_keeps_the_objects(
    s3_server: Server, s3_client: Any, bucket: str
) -> None:
    # A rename is a copy and a delete here: onto itself, the delete would lose the file.
    root = f"{PREFIX}{s3_server.org_id}/"
    async with await s3_server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.mkdir("d")
        async with sftp.open("d/x", "wb") as fh:
            await fh.write(b"kept")
        await sftp.posix_rename("d/x", "d/x")
        await sftp.posix_rename("d", "d")
    assert keys(s3_client, bucket) == [f"{root}d/", f"{root}d/x"]
    assert [(e.topic, e.path) for e in await s3_server.events()] == [
        ("file.created", "d/"),
        ("file.created", "d/x"),
    ]


_LISTENING = re.compile(rb"SFTP on 127\.0\.0\.1:(\d+)")


@asynccontextmanager
async def serve_process(env: dict[str, str]) -> AsyncIterator[tuple[int, int]]:
    """`sftphook serve --roles sftp` in a process of its own: yields (port, pid)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from sftphook.cli import main; main()", "serve", "--roles", "sftp",
        env={**os.environ, **env}, stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stderr is not None
    seen = b""
    try:
        async with asyncio.timeout(60):
            while True:
                line = await proc.stderr.readline()
                assert line, f"server exited before listening: {seen.decode(errors='replace')}"
                seen += line
                match = _LISTENING.search(line)
                if match:
                    break
        drain = asyncio.create_task(proc.stderr.read())
        yield int(match.group(1)), proc.pid
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
    await drain
    assert code == 0


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.slow
async def test_a_64_mib_upload_streams_through_with_bounded_memory(
    tmp_path: Path,
    radosgw: Radosgw,
    bucket: str,
    s3_client: Any,
    client_key: tuple[Path, str],
    host_keys_cache: Path,
) -> None:
    sftp = require_binary("sftp")
    data_dir = tmp_path / "data"
    storage = s3_options(radosgw, bucket)
    settings = Settings.load(data_dir=data_dir, storage=storage)
    reuse_host_keys(settings, host_keys_cache)
    app = App(settings)
    await app.prepare()
    org = await app.accounts.resolve_organization(None)
    await app.accounts.add_user(org.id, "alice", public_keys=[client_key[1]])
    await app.db.close()

    big = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with big.open("wb") as fh:
        for _ in range(64):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            fh.write(block)
    env = {
        "SFTPHOOK_DATA_DIR": str(data_dir),
        "SFTPHOOK_SFTP__HOST": "127.0.0.1",
        "SFTPHOOK_SFTP__PORT": "0",
        # The process whose memory is measured serves SFTP alone.
        "SFTPHOOK_HTTP__OPS_ENDPOINTS": "false",
        **{f"SFTPHOOK_STORAGE__{k.upper()}": v for k, v in storage.items()},
    }
    async with serve_process(env) as (port, pid):
        started = peak_rss_mb(pid)
        server = Server(app=app, port=port, org_id=org.id, key_file=client_key[0])
        batch = tmp_path / "batch"
        batch.write_text(f"put {big} big.bin\nget big.bin {tmp_path}/back.bin\n")
        done = await run(
            [sftp, "-b", str(batch), "-P", str(port), *server.ssh_options(), "alice@127.0.0.1"],
            limit=240,
        )
        assert done.returncode == 0, done.stderr
        peak = peak_rss_mb(pid)
    back = hashlib.sha256((tmp_path / "back.bin").read_bytes()).hexdigest()
    assert back == digest.hexdigest()
    # The whole file never sits in the server's memory: the peak grew by less than the file
    # (about 40 MB here: a part being sent, blocks read ahead), from about 130 MB at start.
    assert peak - started < 64, f"server peak RSS grew from {started:.0f} to {peak:.0f} MB"
    assert peak < 200, f"server peak RSS {peak:.0f} MB"

    app = App(settings)
    try:
        async with app.db.session() as s:
            events = list(await s.scalars(select(Event).order_by(Event.created_at)))
    finally:
        await app.db.close()
    assert [(e.topic, e.path, e.size, e.sha256) for e in events] == [
        ("file.created", "big.bin", 64 * 1024 * 1024, digest.hexdigest()),
        ("file.downloaded", "big.bin", 64 * 1024 * 1024, None),
    ]
    assert pending_uploads(s3_client, bucket) == []


async def test_an_upload_that_lost_a_part_on_the_way_to_the_store_is_not_kept(
    s3_server: Server, s3_client: Any, bucket: str
) -> None:
    root = f"{PREFIX}{s3_server.org_id}/"
    client = s3_server.app.sftp.storage.client  # type: ignore[attr-defined]
    send = client.upload_part
    sent: list[int] = []

    def second_part_fails(**params: Any) -> Any:
        sent.append(params["PartNumber"])
        if len(sent) == 2:  # the store's retries ran out on this one
            raise ClientError({"Error": {"Code": "InternalError"}}, "UploadPart")
        return send(**params)

    client.upload_part = second_part_fails
    data = os.urandom(4 * PART_SIZE)
    step = 256 * 1024
    async with await s3_server.connect() as conn, conn.start_sftp_client() as sftp:
        fh = await sftp.open("gap.bin", "wb")
        with pytest.raises(asyncssh.SFTPFailure, match="did not answer"):
            for offset in range(0, len(data), step):
                await fh.write(data[offset : offset + step], offset)
        # The client gives up on the file and closes it, as `sftp` does after a failed write.
        with pytest.raises(asyncssh.SFTPFailure, match="not kept"):
            await fh.close()
    assert f"{root}gap.bin" not in keys(s3_client, bucket)
    assert not [e for e in await s3_server.events() if e.path == "gap.bin"]
    await eventually(lambda: not pending_uploads(s3_client, bucket))
