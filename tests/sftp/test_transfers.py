"""Uploads are atomic and every completed one is an event: interrupted uploads, client-side
temporary names, awkward names, many clients at once, and a large file checked end to end."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from sftphook.sftp import session as session_module
from sftphook.sftp import transfer as transfer_module
from sftphook.storage import local as local_module
from sftphook.storage.local import UPLOADS_DIR, LocalStorage
from sftphook.storage.spares import SPARES_DIR
from tests.conftest import require_binary
from tests.sftp.conftest import Server, run, topics


def uploads_in_progress(server: Server) -> list[str]:
    return server.app.storage.uploads_in_progress()  # type: ignore[union-attr]


async def wait_for(condition: Callable[[], bool]) -> None:
    # Files appearing and sessions ending have no event to await from a test: poll, bounded.
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def _killed_mid_upload(server: Server, *argv: str) -> None:
    """Run a client that uploads `big.bin`, kill it with SIGKILL once the server is receiving,
    and check that nothing of the upload is left: no file, no temporary file, no event."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        files_root = server.app.settings.files_root

        def receiving() -> bool:
            temps = [files_root / UPLOADS_DIR, files_root / SPARES_DIR]
            return any(p.stat().st_size > 0 for d in temps for p in d.rglob("*") if p.is_file())

        await wait_for(receiving)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    await wait_for(lambda: not server.app.sftp.sessions)
    assert uploads_in_progress(server) == []
    assert not (server.root / "big.bin").exists()
    assert await server.events() == []


async def test_upload_killed_mid_transfer_leaves_nothing(server: Server, tmp_path: Path) -> None:
    sftp = require_binary("sftp")
    local = tmp_path / "big.bin"
    with local.open("wb") as fh:
        fh.truncate(16 * 1024 * 1024)
    batch = tmp_path / "batch"
    batch.write_text(f"put {local} big.bin\n")
    await _killed_mid_upload(
        server, sftp, *server.ssh_options(), "-l", "4000", "-P", str(server.port),
        "-b", str(batch), f"{server.username}@127.0.0.1",
    )  # fmt: skip


async def test_legacy_scp_killed_while_its_ssh_lives_on_leaves_nothing(
    server: Server, tmp_path: Path
) -> None:
    # `scp -O` killed with SIGKILL (a job's timeout, the OOM killer) cannot stop its ssh
    # child: ssh sends the end of its input, and the server's SCP sees the file end early.
    scp = require_binary("scp")
    local = tmp_path / "big.bin"
    local.write_bytes(b"\x01" * (4 * 1024 * 1024))
    await _killed_mid_upload(
        server, scp, "-O", "-l", "2000", *server.ssh_options(), "-P", str(server.port),
        str(local), f"{server.username}@127.0.0.1:big.bin",
    )  # fmt: skip


async def test_scp_file_cut_short_by_the_end_of_input_is_not_kept(server: Server) -> None:
    async with await server.connect() as conn:
        proc = await conn.create_process("scp -t /", encoding=None)
        assert await proc.stdout.readexactly(1) == b"\0"
        proc.stdin.write(b"C0644 1000 part.bin\n")
        assert await proc.stdout.readexactly(1) == b"\0"
        proc.stdin.write(b"x" * 100)
        proc.stdin.write_eof()
        await proc.wait()
    assert not (server.root / "part.bin").exists()
    assert uploads_in_progress(server) == []
    assert await server.events() == []


async def test_scp_file_the_client_reports_unreadable_is_not_kept(server: Server) -> None:
    # OpenSSH's `scp -O` whose local file shrank while it was read sends the size it announced
    # (padded with zeros) and then an error in place of the zero byte that ends a good file.
    async with await server.connect() as conn:
        proc = await conn.create_process("scp -t /", encoding=None)
        assert await proc.stdout.readexactly(1) == b"\0"
        proc.stdin.write(b"C0644 1000 shrunk.bin\n")
        assert await proc.stdout.readexactly(1) == b"\0"
        proc.stdin.write(b"x" * 400 + b"\0" * 600)
        proc.stdin.write(b"\x01scp: shrunk.bin: Input/output error\n")
        proc.stdin.write_eof()
        await proc.wait()
        # Then a good one on another session: the server is still there and keeps it.
        proc = await conn.create_process("scp -t /", encoding=None)
        assert await proc.stdout.readexactly(1) == b"\0"
        proc.stdin.write(b"C0644 5 good.bin\n")
        assert await proc.stdout.readexactly(1) == b"\0"
        proc.stdin.write(b"hello\0")
        assert await proc.stdout.readexactly(1) == b"\0"
        proc.stdin.write_eof()
        await proc.wait()
    assert not (server.root / "shrunk.bin").exists()
    assert (server.root / "good.bin").read_bytes() == b"hello"
    assert uploads_in_progress(server) == []
    assert topics(await server.events()) == [("file.created", "good.bin")]


async def test_client_temporary_name_renamed_gives_one_created(server: Server) -> None:
    data = b"partial upload\n" * 5000
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("invoice.csv.filepart", "wb") as fh:
            await fh.write(data)
        await sftp.rename("invoice.csv.filepart", "invoice.csv")
        # Still under its temporary name, given up; then one the server did not see uploaded.
        async with sftp.open("x.part", "wb") as fh:
            await fh.write(b"x")
        async with sftp.open("abandoned.tmp", "wb") as fh:
            await fh.write(b"abandoned")
        await sftp.remove("abandoned.tmp")
    (server.root / "host.part").write_bytes(b"host")
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.rename("host.part", "host.txt")
    events = await server.events()
    assert topics(events) == [("file.created", "invoice.csv"), ("file.created", "host.txt")]
    assert events[0].size == len(data)
    assert events[0].sha256 == hashlib.sha256(data).hexdigest()
    assert events[1].sha256 == hashlib.sha256(b"host").hexdigest()
    assert uploads_in_progress(server) == []


async def created_matches_file(server: Server, name: str) -> None:
    data = (server.root / name).read_bytes()
    events = await server.events()
    assert topics(events)[-1] == ("file.created", name)
    assert events[-1].size == len(data)
    assert events[-1].sha256 == hashlib.sha256(data).hexdigest()


async def test_rename_between_two_names_of_one_file_changes_nothing(server: Server) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("a", "wb") as fh:
            await fh.write(b"one file")
        await sftp.link("a", "b")
        await sftp.posix_rename("a", "b")  # rename(2) leaves both names
    assert (server.root / "a").read_bytes() == (server.root / "b").read_bytes() == b"one file"
    assert topics(await server.events()) == [("file.created", "a"), ("file.created", "b")]


async def test_rename_between_temporary_names_records_nothing(server: Server) -> None:
    data = b"partial upload\n" * 5000
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("x.filepart", "wb") as fh:
            await fh.write(data)
        await sftp.rename("x.filepart", "y.part")
        await sftp.posix_rename("y.part", "z.tmp")
        await sftp.rename("z.tmp", "z")
    events = await server.events()
    assert topics(events) == [("file.created", "z")]
    await created_matches_file(server, "z")


async def test_rename_to_a_temporary_name_is_a_deletion(server: Server) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("x", "wb") as fh:
            await fh.write(b"set aside")
        await sftp.rename("x", "x.filepart")
        await sftp.posix_rename("x.filepart", "x")  # back: created again, read from disk
        # A directory's name is never a temporary one, as its mkdir was reported.
        await sftp.mkdir("d")
        await sftp.rename("d", "d.filepart")
    events = await server.events()
    assert [(e.topic, e.path, e.previous_path, e.size) for e in events] == [
        ("file.created", "x", None, 9),
        ("file.deleted", "x", None, None),
        ("file.created", "x", None, 9),
        ("file.created", "d/", None, None),
        ("file.renamed", "d.filepart/", "d/", None),
    ]
    assert events[2].sha256 == hashlib.sha256(b"set aside").hexdigest()


async def test_removing_a_temporary_name_the_server_saw_no_upload_to_records_nothing(
    server: Server,
) -> None:
    (server.root / "host.part").write_bytes(b"host")
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("x", "wb") as fh:
            await fh.write(b"set aside")
        await sftp.rename("x", "x.filepart")  # x: deleted for receivers
        await sftp.remove("x.filepart")
        await sftp.link("host.part", "y")
        await sftp.link("y", "y.tmp")
        await sftp.remove("y.tmp")
        await sftp.remove("host.part")
    assert topics(await server.events()) == [
        ("file.created", "x"),
        ("file.deleted", "x"),
        ("file.created", "y"),
    ]


async def test_temporary_name_replaced_by_a_rename_then_renamed_reports_its_content(
    server: Server,
) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("x.filepart", "wb") as fh:
            await fh.write(b"first upload")
        async with sftp.open("y", "wb") as fh:
            await fh.write(b"other upload")  # the same size
        await sftp.posix_rename("y", "x.filepart")
        await sftp.rename("x.filepart", "x")
    await created_matches_file(server, "x")


async def test_temporary_name_truncated_then_renamed_reports_its_content(server: Server) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("x.filepart", "wb") as fh:
            await fh.write(b"0123456789")
        await sftp.truncate("x.filepart", 4)
        await sftp.rename("x.filepart", "x")
    await created_matches_file(server, "x")


async def test_temporary_name_written_by_a_dropped_session_reports_its_content(
    server: Server,
) -> None:
    # Opened without truncating, a file is written in place: what the dropped session wrote
    # stays in it.
    async with (
        await server.connect() as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("x.filepart", "wb") as fh,
    ):
        await fh.write(b"first upload")
    conn = await server.connect()
    sftp = await conn.start_sftp_client()
    fh = await sftp.open("x.filepart", "r+b")
    await fh.write(b"FIRST", 0)
    conn.abort()
    await wait_for(lambda: not server.app.sftp.sessions)
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.rename("x.filepart", "x")
    assert (server.root / "x").read_bytes() == b"FIRST upload"
    await created_matches_file(server, "x")


async def test_rename_to_its_own_name_changes_nothing(server: Server) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("x", "wb") as fh:
            await fh.write(b"kept")
        await sftp.mkdir("d")
        async with sftp.open("y.filepart", "wb") as fh:
            await fh.write(b"upload")
        await sftp.posix_rename("x", "x")
        await sftp.posix_rename("d", "./d")
        await sftp.posix_rename("y.filepart", "y.filepart")
        await sftp.rename("y.filepart", "y")
    assert (server.root / "x").read_bytes() == b"kept"
    assert topics(await server.events()) == [
        ("file.created", "x"),
        ("file.created", "d/"),
        ("file.created", "y"),
    ]
    await created_matches_file(server, "y")


async def test_a_hard_link_is_a_created_file(server: Server) -> None:
    data = b"partial upload\n" * 5000
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        # A client putting its upload in place with a link, then removing the temporary name.
        async with sftp.open("x.filepart", "wb") as fh:
            await fh.write(data)
        await sftp.link("x.filepart", "x")
        await sftp.remove("x.filepart")
        async with sftp.open("a", "wb") as fh:
            await fh.write(b"another file")
        await sftp.link("a", "b")
        # A temporary name stays unseen until it becomes a final one.
        await sftp.link("a", "c.filepart")
        await sftp.rename("c.filepart", "c")
    events = await server.events()
    assert topics(events) == [
        ("file.created", "x"),
        ("file.created", "a"),
        ("file.created", "b"),
        ("file.created", "c"),
    ]
    for event in events:
        content = (server.root / event.path).read_bytes()
        assert (event.size, event.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert (server.root / "x").read_bytes() == data


async def test_a_symbolic_link_is_a_created_file(server: Server) -> None:
    data = b"what the links lead to\n" * 1000
    sha = hashlib.sha256(data).hexdigest()
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("a", "wb") as fh:
            await fh.write(data)
        await sftp.mkdir("d")
        await sftp.symlink("a", "to-a")
        await sftp.symlink("../a", "d/up")  # relative to the link's directory
        await sftp.symlink("to-a", "to-to-a")  # through another link
        # Leading to no regular file: no size, no SHA-256.
        await sftp.symlink("d", "to-d")
        await sftp.symlink("nowhere", "dangling")
        # A temporary name stays unseen.
        await sftp.symlink("a", "to-a.filepart")
    events = await server.events()
    assert [(e.topic, e.path, e.size, e.sha256) for e in events] == [
        ("file.created", "a", len(data), sha),
        ("file.created", "d/", None, None),
        ("file.created", "to-a", len(data), sha),
        ("file.created", "d/up", len(data), sha),
        ("file.created", "to-to-a", len(data), sha),
        ("file.created", "to-d", None, None),
        ("file.created", "dangling", None, None),
    ]


async def test_links_to_one_unchanged_file_read_it_once(
    server: Server, monkeypatch: pytest.MonkeyPatch, reads: list[tuple[str, ...]]
) -> None:
    """Each symbolic link's event has the SHA-256 of the file it leads to, but a client making
    many links to one file makes the server read it once (else a user with write permission
    could make it read `REHASH_LIMIT` bytes per small request); once the file changes, even
    to new bytes of the same size in the same inode, it is read again."""
    monkeypatch.setattr(local_module, "SETTLED_SECONDS", 0)  # as if its ctime were 2 s old
    first, second = b"1" * 100_000, b"2" * 100_000
    (server.root / "a").write_bytes(first)  # placed by the host: no upload remembered
    inode = (server.root / "a").stat().st_ino
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        for n in range(100):
            await sftp.symlink("a", f"l{n}")
        assert reads == [("a",)]
        # File systems stamp times from a clock that ticks every few milliseconds: past a
        # tick, the write below cannot leave the file's times as they were.
        await asyncio.sleep(0.05)
        async with sftp.open("a", "r+b") as fh:  # in place: the same inode
            await fh.write(second)
        for n in range(100, 110):
            await sftp.symlink("a", f"l{n}")
    assert (server.root / "a").stat().st_ino == inode
    assert reads == [("a",), ("a",)]
    events = [e for e in await server.events() if e.path != "a"]
    assert [(e.path, e.size, e.sha256) for e in events] == [
        (f"l{n}", 100_000, hashlib.sha256(first if n < 100 else second).hexdigest())
        for n in range(110)
    ]


async def test_hard_links_and_renames_through_temporary_names_read_a_file_once(
    server: Server, reads: list[tuple[str, ...]]
) -> None:
    """A hard link and a rename set the file's change time, so the kept digests cannot tell
    the file unchanged: the digest read for a new name is kept for both names, as an upload's,
    and fifty hard links, then renames out to temporary names and back, read the file once.
    A new upload under the name drops what was kept for it: the next link reads the new
    content."""
    first, second = b"1" * 100_000, b"2" * 100_000
    (server.root / "a").write_bytes(first)  # placed by the host: no upload remembered
    (server.root / "b.filepart").write_bytes(first)
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        for n in range(50):
            await sftp.link("a", f"h{n}")
        assert reads == [("h0",)]
        await sftp.posix_rename("b.filepart", "b")
        assert reads == [("h0",), ("b",)]
        for name in ("h1", "b"):
            await sftp.posix_rename(name, f"{name}.filepart")
            await sftp.posix_rename(f"{name}.filepart", name)
        assert len(reads) == 2
        async with sftp.open("a", "wb") as fh:  # a new file under the name
            await fh.write(second)
        await sftp.link("a", "c")
    assert reads == [("h0",), ("b",), ("c",)]
    digest = {n: hashlib.sha256(n).hexdigest() for n in (first, second)}
    created = [(e.path, e.sha256) for e in await server.events() if e.topic == "file.created"]
    assert created == [
        *((f"h{n}", digest[first]) for n in range(50)),
        ("b", digest[first]),
        ("h1", digest[first]),
        ("b", digest[first]),
        ("a", digest[second]),
        ("c", digest[second]),
    ]


async def test_a_link_whose_file_goes_before_it_is_read_is_still_reported(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file a new link leads to is removed between the server's look at it and its read
    for the SHA-256: the link exists, so the client gets OK and receivers hear of it, with
    neither size nor SHA-256."""
    (server.root / "b").write_bytes(b"placed by the host")  # no upload remembered: read

    def gone(self: LocalStorage, path: str) -> object:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(LocalStorage, "open_read", gone)
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.symlink("b", "to-b")
        assert await sftp.readlink("to-b") == "b"
    events = await server.events()
    assert [(e.topic, e.path, e.size, e.sha256) for e in events] == [
        ("file.created", "to-b", None, None)
    ]


async def test_a_file_is_read_again_for_its_sha256_only_up_to_a_limit(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new name for a file (a link, a rename from a temporary name) costs its client nothing:
    past `REHASH_LIMIT` the server does not read the whole file again, and the event has the
    size without a SHA-256, unless the server has the file's upload in memory."""
    monkeypatch.setattr(session_module, "REHASH_LIMIT", 1000)
    monkeypatch.setattr(transfer_module, "REHASH_LIMIT", 1000)
    small, large = b"s" * 1000, b"L" * 1001
    (server.root / "small").write_bytes(small)  # placed by the host: no upload remembered
    (server.root / "large").write_bytes(large)
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.symlink("small", "to-small")
        await sftp.symlink("large", "to-large")
        await sftp.link("large", "large-too")
        await sftp.rename("large", "large.tmp")
        await sftp.rename("large.tmp", "large-again")
        async with sftp.open("upload.filepart", "wb") as fh:  # remembered: no read needed
            await fh.write(large)
        await sftp.rename("upload.filepart", "upload")
    events = await server.events()
    assert [(e.topic, e.path, e.size, e.sha256) for e in events] == [
        ("file.created", "to-small", 1000, hashlib.sha256(small).hexdigest()),
        ("file.created", "to-large", 1001, None),
        ("file.created", "large-too", 1001, None),
        ("file.deleted", "large", None, None),
        ("file.created", "large-again", 1001, None),
        ("file.created", "upload", 1001, hashlib.sha256(large).hexdigest()),
    ]


async def test_a_large_file_put_in_place_of_a_small_one_before_its_read_is_not_read_whole(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The size is looked at first, the file opened after: a large file renamed onto the name
    in between is read no further than one byte past the size looked at, and the event has
    that size without a SHA-256 (not the large file's digest with the small file's size)."""
    (server.root / "small").write_bytes(b"s" * 10)
    (server.root / "huge").write_bytes(b"H" * 50_000)
    read: list[int] = []
    original = LocalStorage.open_read

    def swapped_then_open(self: LocalStorage, path: str) -> Any:
        if (server.root / "huge").exists():
            (server.root / "huge").replace(server.root / "small")  # another client's rename
        handle = original(self, path)
        pread = handle.pread

        def counted(offset: int, size: int) -> bytes:
            chunk = pread(offset, size)
            read.append(len(chunk))
            return chunk

        handle.pread = counted
        return handle

    monkeypatch.setattr(LocalStorage, "open_read", swapped_then_open)
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.symlink("small", "to-small")
    events = await server.events()
    assert [(e.topic, e.path, e.size, e.sha256) for e in events] == [
        ("file.created", "to-small", 10, None)
    ]
    assert sum(read) == 11


async def test_a_write_in_place_reads_the_file_again_only_up_to_a_limit_beyond_what_was_sent(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening an existing file for writing without truncating it and closing it: its event's
    SHA-256 is of the whole file, read again at the close, but the server reads at most
    `REHASH_LIMIT` bytes more than the client sent (else one small request would make it read
    a file of any size)."""
    monkeypatch.setattr(transfer_module, "REHASH_LIMIT", 1000)
    (server.root / "big").write_bytes(b"b" * 2500)
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("big", asyncssh.FXF_WRITE, encoding=None) as fh:  # nothing sent
            pass
        async with sftp.open("big", asyncssh.FXF_WRITE, encoding=None) as fh:
            await fh.write(b"x")  # 1 byte sent, 2,499 to read again: too many
        async with sftp.open("big", asyncssh.FXF_WRITE, encoding=None) as fh:
            await fh.write(b"y" * 1500, 1000)  # 1,500 sent, 1,000 more to read: within
    expected = b"x" + b"b" * 999 + b"y" * 1500
    events = await server.events()
    assert [(e.topic, e.path, e.size, e.sha256) for e in events] == [
        ("file.created", "big", 2500, None),
        ("file.created", "big", 2500, None),
        ("file.created", "big", 2500, hashlib.sha256(expected).hexdigest()),
    ]
    assert (server.root / "big").read_bytes() == expected


async def test_temporary_names_of_a_symbolic_link_are_unseen(server: Server) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("a", "wb") as fh:
            await fh.write(b"target")
        await sftp.symlink("a", "l.filepart")
        await sftp.rename("l.filepart", "l.part")
        await sftp.rename("l.part", "l")  # created now, with what it leads to
        await sftp.rename("l", "l.tmp")  # gone for receivers
    events = await server.events()
    assert [(e.topic, e.path, e.size) for e in events] == [
        ("file.created", "a", 6),
        ("file.created", "l", 6),
        ("file.deleted", "l", None),
    ]
    assert events[1].sha256 == hashlib.sha256(b"target").hexdigest()


async def test_renamed_link_has_no_size(server: Server) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("a-target-with-a-long-name.txt", "wb") as fh:
            await fh.write(b"x")
        await sftp.symlink("a-target-with-a-long-name.txt", "link")
        await sftp.rename("link", "link2")
        await sftp.remove("link2")
    events = await server.events()
    assert [(e.topic, e.path, e.size) for e in events[1:]] == [
        ("file.created", "link", 1),  # the size of the file it leads to
        ("file.renamed", "link2", None),
        ("file.deleted", "link2", None),
    ]


@pytest.mark.parametrize(
    "name", ["with space.txt", "plus+sign.txt", "per%20cent.txt", "ünïcødé-日本.txt"]
)
async def test_awkward_names(server: Server, tmp_path: Path, name: str) -> None:
    sftp = require_binary("sftp")
    local = tmp_path / name
    local.write_bytes(name.encode())
    batch = tmp_path / "batch"
    batch.write_text(
        f'mkdir "dir {name}"\nput "{local}" "dir {name}/{name}"\nls "dir {name}"\n'
        f'get "dir {name}/{name}" "{tmp_path}/back"\n'
    )
    result = await run(
        [sftp, *server.ssh_options(), "-P", str(server.port), "-b", str(batch),
         f"{server.username}@127.0.0.1"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert name in result.stdout
    assert (tmp_path / "back").read_bytes() == name.encode()
    assert (server.root / f"dir {name}" / name).read_bytes() == name.encode()
    assert topics(await server.events()) == [
        ("file.created", f"dir {name}/"),
        ("file.created", f"dir {name}/{name}"),
        ("file.downloaded", f"dir {name}/{name}"),
    ]


async def test_twenty_clients_fifty_files_each(server: Server) -> None:
    async def client(n: int) -> set[tuple[str, str]]:
        sent = set()
        async with await server.connect() as conn, conn.start_sftp_client() as sftp:
            await sftp.mkdir(f"c{n}")
            for i in range(50):
                data = f"client {n} file {i}\n".encode() * (i + 1)
                async with sftp.open(f"c{n}/f{i}.txt", "wb") as fh:
                    await fh.write(data)
                sent.add((f"c{n}/f{i}.txt", hashlib.sha256(data).hexdigest()))
        return sent

    results = await asyncio.gather(*(client(n) for n in range(20)))
    expected = set().union(*results)
    events = await server.events()
    files = {(e.path, e.sha256) for e in events if not e.path.endswith("/")}
    assert files == expected and len(expected) == 1000
    assert len(events) == 1020
    assert len({e.session_id for e in events}) == 20
    for path, _ in expected:
        assert (server.root / path).is_file()


@pytest.mark.slow
async def test_256_mib_file_sha256_end_to_end(server: Server, tmp_path: Path) -> None:
    sftp = require_binary("sftp")
    local = tmp_path / "big.bin"
    sha = hashlib.sha256()
    block = hashlib.sha256(b"block").digest() * (1024 * 1024 // 32)
    with local.open("wb") as fh:
        for i in range(256):
            chunk = i.to_bytes(4, "big") + block[4:]
            sha.update(chunk)
            fh.write(chunk)
    batch = tmp_path / "batch"
    back = tmp_path / "back.bin"
    batch.write_text(f"put {local} big.bin\nget big.bin {back}\n")
    result = await run(
        [sftp, *server.ssh_options(), "-P", str(server.port), "-b", str(batch),
         f"{server.username}@127.0.0.1"],
        limit=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    local.unlink()
    events = await server.events()
    assert topics(events) == [("file.created", "big.bin"), ("file.downloaded", "big.bin")]
    assert events[0].size == 256 * 1024 * 1024
    assert events[0].sha256 == sha.hexdigest()
    got = hashlib.sha256()
    with back.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            got.update(chunk)
    assert got.hexdigest() == sha.hexdigest()


async def test_out_of_order_writes_are_hashed_at_close(server: Server) -> None:
    async with (
        await server.connect() as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("holes.bin", "wb") as fh,
    ):
        await fh.write(b"B" * 1000, 1000)
        await fh.write(b"A" * 1000, 0)
    (event,) = await server.events()
    assert event.sha256 == hashlib.sha256(b"A" * 1000 + b"B" * 1000).hexdigest()


@pytest.mark.parametrize("size", [1000, 2 * 1024 * 1024])
async def test_upload_shrunk_then_written_past_the_cut_is_hashed_at_close(
    server: Server, size: int
) -> None:
    # The bytes cut off by the resize were hashed already; the file now has zeros there.
    async with (
        await server.connect() as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("cut.bin", "wb") as fh,
    ):
        await fh.write(b"A" * size, 0)
        await fh.truncate(size // 2)
        await fh.write(b"B" * 10, size)
    data = (server.root / "cut.bin").read_bytes()
    assert data == b"A" * (size // 2) + bytes(size - size // 2) + b"B" * 10
    (event,) = await server.events()
    assert event.size == len(data)
    assert event.sha256 == hashlib.sha256(data).hexdigest()


async def test_exclusive_create_never_replaces_a_file_that_appeared_meanwhile(
    server: Server,
) -> None:
    # An exclusive upload is invisible until its close: two can be open for one name at once,
    # or a plain upload can land first. The first to close wins; an exclusive one closing
    # after it is refused instead of replacing the file (SFTP v3 has no "already exists"
    # status: a failure naming why).
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        first = await sftp.open("once.txt", "xb")
        await first.write(b"first")
        async with sftp.open("once.txt", "xb") as second:
            await second.write(b"second")
        with pytest.raises(asyncssh.SFTPFailure, match="name was taken"):
            await first.close()
        exclusive = await sftp.open("other.txt", "xb")
        await exclusive.write(b"exclusive")
        async with sftp.open("other.txt", "wb") as plain:
            await plain.write(b"plain")
        with pytest.raises(asyncssh.SFTPFailure, match="name was taken"):
            await exclusive.close()
    assert (server.root / "once.txt").read_bytes() == b"second"
    assert (server.root / "other.txt").read_bytes() == b"plain"
    events = await server.events()
    assert topics(events) == [("file.created", "once.txt"), ("file.created", "other.txt")]
    assert events[0].sha256 == hashlib.sha256(b"second").hexdigest()
    assert uploads_in_progress(server) == []


async def test_an_upload_whose_directory_is_renamed_meanwhile_reports_where_it_landed(
    server: Server,
) -> None:
    # The upload holds its directory: the file lands in it under its new name, as with
    # OpenSSH's server, and the event names that path, not the one the upload was opened at.
    (server.root / "in").mkdir()
    (server.root / "other").mkdir()
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        moved = await sftp.open("in/x.csv", "wb")
        await moved.write(b"moved")
        await sftp.rename("in", "inbound")
        await sftp.rename("other", "inbound/2026")  # a second move, of a directory inside
        await moved.close()
        async with sftp.open("inbound/2026/y.csv", "wb") as fh:
            stays = await sftp.open("inbound/2026/z.csv", "wb")
            await fh.write(b"y")
        await sftp.rename("inbound", "done")
        await stays.write(b"z")
        await stays.close()
    assert (server.root / "done" / "x.csv").read_bytes() == b"moved"
    assert (server.root / "done" / "2026" / "z.csv").read_bytes() == b"z"
    created = [e.path for e in await server.events() if e.topic == "file.created"]
    assert created == ["inbound/x.csv", "inbound/2026/y.csv", "done/2026/z.csv"]


async def test_a_plain_rename_never_replaces(server: Server) -> None:
    # SSH_FXP_RENAME (not posix-rename) fails when the new name exists, file or directory.
    (server.root / "a.txt").write_text("a")
    (server.root / "b.txt").write_text("b")
    (server.root / "empty").mkdir()
    (server.root / "dir").mkdir()
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        for old, new in (("a.txt", "b.txt"), ("dir", "empty"), ("a.txt", "empty")):
            with pytest.raises(asyncssh.SFTPFailure, match="already exists"):
                await sftp.rename(old, new)
        await sftp.rename("a.txt", "c.txt")
    assert (server.root / "b.txt").read_text() == "b" and (server.root / "empty").is_dir()
    assert (server.root / "c.txt").read_text() == "a" and (server.root / "dir").is_dir()
    assert topics(await server.events()) == [("file.renamed", "c.txt")]


async def test_failed_rename_and_remove_record_nothing(server: Server) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.remove("nope")
        with pytest.raises(asyncssh.SFTPError):
            await sftp.rename("nope", "other")
    assert await server.events() == []


async def test_shutdown_does_not_wait_for_the_listener_before_closing_connections(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From Python 3.12.1 a listening server's `wait_closed()` also waits for every connection
    it accepted to close: awaited before the front closes them, a shutdown with a client
    connected waited out its whole deadline. The listener here waits as 3.12's does (this
    suite runs on 3.11 too)."""
    front = server.app.sftp
    assert front is not None and front._server is not None

    async def wait_closed_as_in_python_3_12() -> None:
        # The front keeps no event for "no connection left": polled, as a stand-in only.
        while front._connections:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    monkeypatch.setattr(front._server, "wait_closed", wait_closed_as_in_python_3_12)
    conn = await server.connect()
    try:
        async with asyncio.timeout(5):
            await front.close()
    finally:
        conn.close()
    assert not front.sessions


async def test_shutdown_discards_open_uploads(server: Server) -> None:
    conn = await server.connect()
    try:
        sftp = await conn.start_sftp_client()
        fh = await sftp.open("open.bin", "wb")
        await fh.write(b"x" * 100_000)
        await server.app.sftp.close()
        with pytest.raises((asyncssh.Error, OSError)):
            await fh.write(b"more")
            await fh.close()
    finally:
        conn.close()
    assert not server.app.sftp.sessions
    assert uploads_in_progress(server) == []
    assert not (server.root / "open.bin").exists()
    assert await server.events() == []
