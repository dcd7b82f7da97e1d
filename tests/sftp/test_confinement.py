"""No path, `..`, symbolic or hard link reaches outside the home: each escape known to work
against a text-only chroot is tried here, and every way of using the escape must fail."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh
import pytest

from tests.sftp.conftest import Server

SECRET = b"host secret\n"


@pytest.fixture
def host_dir(server: Server) -> Path:
    """A directory of the host one level above the organization root, with a secret file."""
    host = server.root.parent / "host"
    host.mkdir()
    (host / "secret.txt").write_bytes(SECRET)
    (host / "secret.txt").chmod(0o600)
    return host


async def assert_sealed(sftp: asyncssh.SFTPClient, link: str, host: Path) -> None:
    attempts = [
        sftp.stat(f"{link}/secret.txt"),
        sftp.listdir(link),
        sftp.chmod(f"{link}/secret.txt", 0o666),
        sftp.remove(f"{link}/secret.txt"),
        sftp.link(f"{link}/secret.txt", "stolen.txt"),
        sftp.rename("mine.txt", f"{link}/planted.txt"),
        sftp.mkdir(f"{link}/newdir"),
    ]
    for attempt in attempts:
        with pytest.raises(asyncssh.SFTPError):
            await attempt
    with pytest.raises(asyncssh.SFTPError):
        async with sftp.open(f"{link}/secret.txt", "rb") as fh:
            await fh.read()
    with pytest.raises(asyncssh.SFTPError):
        async with sftp.open(f"{link}/planted.txt", "wb") as fh:
            await fh.write(b"planted")
    assert sorted(os.listdir(host)) == ["secret.txt"]
    assert (host / "secret.txt").read_bytes() == SECRET
    assert (host / "secret.txt").stat().st_mode & 0o777 == 0o600
    assert not (await sftp.exists("stolen.txt"))


async def test_relative_link_renamed_to_the_top(server: Server, host_dir: Path) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.mkdir("a")
        async with sftp.open("mine.txt", "wb") as fh:
            await fh.write(b"mine")
        await sftp.symlink("../host", "a/l")  # inside while it sits in a/
        assert await sftp.readlink("a/l") == "../host"
        await sftp.rename("a/l", "l")
        await assert_sealed(sftp, "l", host_dir)


async def test_directory_swapped_in_a_links_path(server: Server, host_dir: Path) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("mine.txt", "wb") as fh:
            await fh.write(b"mine")
        await sftp.makedirs("d/e")
        await sftp.symlink("d/e/../../host", "l")  # as text: /host, inside
        await sftp.rmdir("d/e")
        await sftp.rmdir("d")
        await sftp.mkdir("e")
        await sftp.symlink(".", "d")  # now d/e/../.. climbs above the root
        await assert_sealed(sftp, "l", host_dir)


async def test_links_placed_by_the_host_are_not_followed(server: Server, host_dir: Path) -> None:
    (server.root / "absolute").symlink_to(host_dir)
    (server.root / "relative").symlink_to("../host")
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("mine.txt", "wb") as fh:
            await fh.write(b"mine")
        await assert_sealed(sftp, "absolute", host_dir)
        await assert_sealed(sftp, "relative", host_dir)
        with pytest.raises(asyncssh.SFTPError):
            await sftp.readlink("absolute")  # would show a host path


async def test_links_that_leave_the_home_cannot_be_made(server: Server, host_dir: Path) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        for target in ("../host", "a/../../host", "../../../../../../../../etc"):
            with pytest.raises(asyncssh.SFTPError):
                await sftp.symlink(target, "l")
        # Absolute targets are paths of the user's own tree, stored relative on disk.
        await sftp.mkdir("a")
        await sftp.symlink(str(host_dir), "a/abs")
        stored = os.readlink(server.root / "a" / "abs")
        assert not stored.startswith("/")
        assert (server.root / "a" / stored).resolve().is_relative_to(server.root)
        # A hard link to a file in the tree is fine, and stays a file of the tree.
        async with sftp.open("mine.txt", "wb") as fh:
            await fh.write(b"mine")
        await sftp.link("mine.txt", "twin.txt")
        async with sftp.open("twin.txt", "rb") as fh:
            assert await fh.read() == b"mine"


async def test_dot_dot_stops_at_the_home(server: Server, client_key) -> None:
    app = server.app
    await app.accounts.add_user(
        server.org_id, "acme", password="acme password", home="/partners/acme"
    )
    other = server.root / "partners" / "other"
    other.mkdir(parents=True)
    (other / "theirs.txt").write_text("theirs")
    (server.root / "partners" / "acme").mkdir()
    (server.root / "partners" / "acme" / "out").symlink_to("../other")
    connecting = server.connect(username="acme", password="acme password")
    async with await connecting as conn, conn.start_sftp_client() as sftp:
        assert await sftp.realpath("../..") == "/"
        assert sorted(await sftp.listdir("/../..")) == [".", "..", "out"]
        for path in ("../other/theirs.txt", "/../other/theirs.txt", "out/theirs.txt"):
            with pytest.raises(asyncssh.SFTPError):
                await sftp.stat(path)
        async with sftp.open("../../in.txt", "wb") as fh:
            await fh.write(b"in")
        with pytest.raises(asyncssh.SFTPError):
            await sftp.symlink("../other", "mine")
        with pytest.raises(asyncssh.SFTPError):
            await sftp.rmdir("/")
    assert (server.root / "partners" / "acme" / "in.txt").read_bytes() == b"in"
    events = await server.events()
    assert [(e.topic, e.path, e.actor_id) for e in events] == [
        ("file.created", "partners/acme/in.txt", "acme")
    ]


async def test_permissions_are_enforced(server: Server) -> None:
    await server.app.accounts.add_user(
        server.org_id, "reader", password="reader password", permissions="read,list"
    )
    (server.root / "r.txt").write_text("r")
    connecting = server.connect(username="reader", password="reader password")
    async with await connecting as conn, conn.start_sftp_client() as sftp:
        assert "r.txt" in await sftp.listdir(".")
        async with sftp.open("r.txt", "rb") as fh:
            assert await fh.read() == b"r"
        for attempt in (
            sftp.remove("r.txt"),
            sftp.mkdir("d"),
            sftp.rename("r.txt", "s.txt"),
            sftp.chmod("r.txt", 0o600),
        ):
            with pytest.raises(asyncssh.SFTPError) as info:
                await attempt
            assert info.value.code == asyncssh.FX_PERMISSION_DENIED
        with pytest.raises(asyncssh.SFTPError):
            async with sftp.open("w.txt", "wb") as fh:
                await fh.write(b"w")
    assert sorted(os.listdir(server.root)) == ["r.txt"]


@pytest.mark.parametrize(
    "pflags",
    [asyncssh.FXF_WRITE, asyncssh.FXF_WRITE | asyncssh.FXF_APPEND],
    ids=["write", "append"],
)
async def test_a_handle_opened_for_writing_reads_nothing(server: Server, pflags: int) -> None:
    # A drop box: a user who may upload but not download reads no file through a handle
    # opened to write it in place (resume, append).
    await server.app.accounts.add_user(
        server.org_id, "dropbox", password="dropbox password", permissions="write,list"
    )
    (server.root / "report.csv").write_bytes(b"not for the drop box")
    connecting = server.connect(username="dropbox", password="dropbox password")
    async with (
        await connecting as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("report.csv", pflags) as fh,
    ):
        with pytest.raises(asyncssh.SFTPError) as info:
            await fh.read(100, 0)
        assert info.value.code == asyncssh.FX_PERMISSION_DENIED
    assert (server.root / "report.csv").read_bytes() == b"not for the drop box"


async def test_organizations_do_not_share_files(server: Server) -> None:
    accounts = server.app.accounts
    other = await accounts.add_organization("other")
    await accounts.add_user(other.id, "bob", password="bob password")
    (server.root / "alice.txt").write_text("alice")
    connecting = server.connect(username="bob", password="bob password")
    async with await connecting as conn, conn.start_sftp_client() as sftp:
        assert sorted(await sftp.listdir("/")) == [".", ".."]
        for path in ("/alice.txt", f"/../{server.org_id}/alice.txt"):
            with pytest.raises(asyncssh.SFTPError):
                await sftp.stat(path)
        async with sftp.open("bob.txt", "wb") as fh:
            await fh.write(b"bob")
    assert (server.root.parent / other.id / "bob.txt").read_bytes() == b"bob"
    (event,) = await server.events()
    assert (event.organization_id, event.path, event.actor_id) == (other.id, "bob.txt", "bob")
