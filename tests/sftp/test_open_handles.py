"""One session holds at most `sftp.max_open_handles` files and directories open: the process's
descriptors are shared by every session, and a client opening without closing would otherwise
use them all up."""

from __future__ import annotations

import asyncssh
import pytest

from tests.sftp.conftest import Server


async def test_a_session_holds_at_most_its_limit_of_open_handles(server: Server) -> None:
    server.app.settings.sftp.max_open_handles = 5
    for i in range(3):
        (server.root / f"f{i}").write_bytes(b"x" * (i + 1))
    (server.root / "d").mkdir()
    (server.root / "d" / "inside").write_bytes(b"y")
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        # What limits@openssh.com tells clients (asyncssh's client keeps only the lengths).
        reply = await sftp._handler._make_request(b"limits@openssh.com")
        assert asyncssh.SFTPLimits.decode(reply).max_open_handles == 5
        files = [await sftp.open(f"f{i}", "rb") for i in range(3)]
        upload = await sftp.open("new.bin", "wb")
        listing = await sftp._handler.opendir(b"d")
        # Five held: a sixth file or directory is refused, with the reason.
        with pytest.raises(asyncssh.SFTPFailure, match="already has 5 files and directories"):
            await sftp.open("f0", "rb")
        with pytest.raises(asyncssh.SFTPFailure, match="close some first"):
            await sftp._handler.opendir(b".")
        # A closed file frees its place.
        await files[0].close()
        again = await sftp.open("f0", "rb")
        assert await again.read() == b"x"
        # A listing read to its end holds nothing any more, even before its handle is closed.
        names: list[bytes] = []
        with pytest.raises(asyncssh.SFTPEOFError):
            while True:
                names += [n.filename for n in (await sftp._handler.readdir(listing))[0]]
        assert sorted(names) == [b".", b"..", b"inside"]
        second = await sftp.open("f1", "rb")
        await sftp._handler.close(listing)
        for handle in (*files[1:], again, second, upload):
            await handle.close()
        # The upload completed normally: limits change nothing else.
        assert await sftp.exists("new.bin")
    # Another session has its own count.
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        held = [await sftp.open(f"f{i % 3}", "rb") for i in range(5)]
        for handle in held:
            await handle.close()
