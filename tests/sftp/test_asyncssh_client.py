"""The asyncssh client drives every common operation; each one leaves its event."""

from __future__ import annotations

import hashlib

import asyncssh

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


async def test_mode_sent_with_the_open_is_the_new_files(server: Server) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        for name, attrs in [
            ("setuid", asyncssh.SFTPAttrs(permissions=0o4755)),
            ("default", asyncssh.SFTPAttrs()),
            ("replaced", asyncssh.SFTPAttrs(permissions=0o600)),
            ("replaced", asyncssh.SFTPAttrs(permissions=0o640)),
            # Created where it is written (appended to), then opened again: an existing file
            # keeps its mode, as with open(2).
            ("appended", asyncssh.SFTPAttrs(permissions=0o2700)),
            ("appended", asyncssh.SFTPAttrs(permissions=0o666)),
        ]:
            pflags = "ab" if name == "appended" else "wb"
            async with sftp.open(name, pflags, attrs=attrs) as fh:
                await fh.write(b"data")
        assert (await sftp.stat("setuid")).permissions == 0o100755
    modes = {p.name: p.stat().st_mode & 0o7777 for p in server.root.iterdir()}
    assert modes == {"setuid": 0o755, "default": 0o644, "replaced": 0o600, "appended": 0o700}


async def test_write_with_bytes_after_the_data_is_accepted(server: Server) -> None:
    # rclone 1.60 sends SSH_FXP_WRITE packets with extra bytes after the data, which OpenSSH's
    # server ignores; sent here by hand, since no stock client would.
    from asyncssh.packet import String, UInt64
    from asyncssh.sftp import FXP_WRITE

    async with (
        await server.connect() as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("junk.bin", "wb") as fh,
    ):
        handler = sftp._handler
        await handler._make_request(
            FXP_WRITE, String(fh._handle), UInt64(0), String(b"payload"), b"\x00junk"
        )
    assert (server.root / "junk.bin").read_bytes() == b"payload"


async def test_readlink_of_a_relative_link_and_fsync(server: Server) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.makedirs("a/b")
        async with sftp.open("a/target.txt", "wb") as fh:
            await fh.write(b"t")
            await fh.fsync()
        await sftp.symlink("../target.txt", "a/b/link")
        assert await sftp.readlink("a/b/link") == "../target.txt"
        async with sftp.open("a/b/link", "rb") as fh:
            assert await fh.read() == b"t"
        assert (await sftp.lstat("a/b/link")).type == 3  # a link, not followed
        assert (await sftp.statvfs(".")).bsize > 0
        await sftp.posix_rename("a/target.txt", "a/b/../moved.txt")
        assert await sftp.exists("a/moved.txt")
