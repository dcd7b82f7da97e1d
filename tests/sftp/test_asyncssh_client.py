"""The asyncssh client drives every common operation; each one leaves its event."""

from __future__ import annotations

import hashlib

from tests.sftp.conftest import Server, topics


async def test_put_get_ls_rename_remove_mkdir_rmdir(server: Server) -> None:
    data = b"hello world\n" * 1000
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.mkdir("inbound")
        async with sftp.open("inbound/a.txt", "wb") as fh:
            await fh.write(data)
        assert sorted(await sftp.listdir("inbound")) == [".", "..", "a.txt"]
        async with sftp.open("inbound/a.txt", "rb") as fh:
            assert await fh.read() == data
        await sftp.rename("inbound/a.txt", "inbound/b.txt")
        await sftp.remove("inbound/b.txt")
        await sftp.rmdir("inbound")
    events = await server.events()
    assert topics(events) == [
        ("file.created", "inbound/"),
        ("file.created", "inbound/a.txt"),
        ("file.downloaded", "inbound/a.txt"),
        ("file.renamed", "inbound/b.txt"),
        ("file.deleted", "inbound/b.txt"),
        ("file.deleted", "inbound/"),
    ]
    created = events[1]
    assert created.size == len(data)
    assert created.sha256 == hashlib.sha256(data).hexdigest()
    assert created.protocol == "SFTP" and created.actor_id == "alice"
    assert created.client_ip == "127.0.0.1" and created.session_id
    assert events[3].previous_path == "inbound/a.txt"
    assert not (server.root / "inbound").exists()
