"""The data directory's file system fills up during an upload (a small tmpfs made by the test):
the client gets a clean SFTP error, no partial or corrupt file appears, no event is recorded for
it, and the server goes on serving other sessions."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import select

from sftphook.app import App
from sftphook.store.models import Event
from tests.conftest import IN_CI, serving
from tests.reliability.conftest import Ledger
from tests.reliability.fault_receiver import FaultyReceiver
from tests.reliability.serve_process import add_partner, base_settings, connect, content
from tests.sftp.conftest import host_keys_cache, reuse_host_keys  # noqa: F401

pytestmark = pytest.mark.e2e

DISK_MB = 8


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted afterwards."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        message = (
            f"cannot mount a tmpfs for the disk-full test ({done.stderr.strip()}); "
            "it needs root or CAP_SYS_ADMIN"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


async def test_disk_full_during_uploads(
    tmp_path: Path,
    small_disk: Path,
    host_keys_cache: Path,  # noqa: F811
    ledger: Ledger,
):
    receiver = FaultyReceiver()
    await receiver.start()
    settings = base_settings(
        small_disk / "data",
        sftp={"host": "127.0.0.1", "port": 0},
        webhooks={"allow_http": True, "allowed_networks": ["127.0.0.0/8"]},
    )
    reuse_host_keys(settings, host_keys_cache)
    too_big = content("big", (DISK_MB + 4) * 1024 * 1024)
    outcomes: list[str] = []
    try:
        async with serving(settings, frozenset({"sftp", "worker"})) as app:
            org = (await app.accounts.resolve_organization(None)).id
            await add_partner(app, org)
            await app.webhooks.create(org, nickname="r", url=receiver.url, topics=["file.created"])
            port = app.sftp.port
            root = settings.files_root / org
            async with await connect(port) as other, other.start_sftp_client() as bystander:
                # Ways of running out of space: one big upload, the same again, two sessions
                # filling the disk together, and after each a client that writes piece by piece
                # and closes its file although a write failed.
                rounds = [("big-1.bin",), ("big-2.bin",), ("pair-a.bin", "pair-b.bin")]
                for names in rounds:
                    data = too_big if len(names) == 1 else too_big[: len(too_big) * 2 // 3]
                    for name, result in zip(names, await _uploads(port, names, data), strict=True):
                        outcomes.append(f"{name}: {result}")
                    # A client that sees its write fail and closes the file all the same.
                    name = f"big-closed-{len(outcomes)}.bin"
                    outcomes.append(f"{name}: {await _write_until_full(port, name)}")
                    # The session that was open all along still works.
                    async with bystander.open(f"after-{names[0]}.txt", "wb") as f:
                        await f.write(b"still serving")
            events = {e.path: e for e in await _created(app)}
            tried = len(outcomes)
            refused = sum(1 for o in outcomes if "refused" in o)
            visible = [p.name for p in root.iterdir() if p.name.startswith(("big", "pair"))]
            phantom = [p for p in events if p.startswith(("big", "pair"))]
            temp_left = app.storage.uploads_in_progress()  # type: ignore[union-attr]
            served = [p for p in events if p.startswith("after-")]
            await receiver.wait_accepted([events[p].id for p in served], 10)
            tally = receiver.tally([events[p].id for p in served])
    finally:
        await receiver.stop()
    rounds_done = 3
    ledger.record(
        "disk",
        f"file system full ({DISK_MB} MiB tmpfs) during {tried} uploads",
        tried=tried + rounds_done,
        lost=(rounds_done - len(served)) + tally.lost,
        duplicated=tally.duplicated,
        leaked=len(visible) + len(phantom) + len(temp_left),
        crashed=tried - refused,
        note=f"{refused} of {tried} refused with an SFTP error ({_reasons(outcomes)}); the "
        f"session open all along uploaded {len(served)} files after them, all delivered",
    )
    assert refused == tried, outcomes
    assert not visible and not phantom and not temp_left
    assert len(served) == rounds_done and tally.lost == tally.duplicated == 0


def _reasons(outcomes: list[str]) -> str:
    found = [
        r
        for r in ("No space left on device", "the upload was not kept")
        if any(r in o for o in outcomes)
    ]
    return ", ".join(f"“{r}”" for r in found)


async def _write_until_full(port: int, name: str) -> str:
    """Write 256 KiB pieces one at a time until one fails, then close the handle: the close
    must not keep the partial file."""
    piece = content(name, 256 * 1024)
    async with await connect(port) as conn, conn.start_sftp_client() as sftp:
        f = await sftp.open(name, "wb")
        offset = 0
        try:
            while offset < (DISK_MB + 4) * 1024 * 1024:
                await f.write(piece, offset)
                offset += len(piece)
        except asyncssh.SFTPError as exc:
            reason = f"write refused ({exc.reason})"
        else:
            reason = "every write accepted"
        try:
            await f.close()
        except asyncssh.SFTPError as exc:
            return f"refused: {reason}, close refused ({exc.reason})"
        return f"{reason}, close accepted"


async def _uploads(port: int, names: tuple[str, ...], data: bytes) -> list[str]:
    async def one(name: str) -> str:
        try:
            async with (
                await connect(port) as conn,
                conn.start_sftp_client() as sftp,
                sftp.open(name, "wb") as f,
            ):
                await f.write(data)
        except asyncssh.SFTPError as exc:
            return f"refused ({type(exc).__name__}: {exc.reason})"
        return "accepted"

    return list(await asyncio.gather(*(one(n) for n in names)))


async def _created(app: App) -> list[Event]:
    async with app.db.session() as s:
        return list(await s.scalars(select(Event).where(Event.topic == "file.created")))
