"""The database misbehaves under a steady stream of uploads: SQLite locked by another writer for
seconds, PostgreSQL restarted. Events wait and land; every upload that succeeded has its event,
every file on disk has its event, every event reaches the receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import select

from sftphook.app import App
from sftphook.config import Settings
from sftphook.store.models import Event
from tests.conftest import serving
from tests.reliability.conftest import SOAK, Ledger
from tests.reliability.fault_receiver import FaultyReceiver
from tests.reliability.private_postgres import private_postgres
from tests.reliability.serve_process import add_partner, base_settings, connect, content
from tests.sftp.conftest import host_keys_cache, reuse_host_keys  # noqa: F401

pytestmark = pytest.mark.e2e

SESSIONS = 4


@dataclasses.dataclass
class Uploads:
    completed: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)


async def _keep_uploading(port: int, tag: str, until: float, out: Uploads) -> None:
    """Upload small files one after another until `until`; a failed one is counted, the session
    opened again if it was lost, and the next file tried."""
    n = 0
    while time.monotonic() < until:
        try:
            async with await connect(port) as conn, conn.start_sftp_client() as sftp:
                while time.monotonic() < until:
                    name = f"{tag}-{n}.csv"
                    n += 1
                    try:
                        async with sftp.open(name, "wb") as f:
                            await f.write(content(name, 2048))
                    except asyncssh.SFTPError:
                        out.failed.append(name)
                        continue
                    out.completed.append(name)
                    await asyncio.sleep(0.02)
        except (OSError, asyncssh.Error):
            await asyncio.sleep(0.2)


async def _created(app: App) -> dict[str, str]:
    async with app.db.session() as s:
        rows = await s.execute(select(Event.path, Event.id).where(Event.topic == "file.created"))
        return {path: event_id for path, event_id in rows.all()}


async def _load_with_fault(
    settings: Settings,
    receiver: FaultyReceiver,
    *,
    duration: float,
    fault: Callable[[], Awaitable[str]],
) -> tuple[Uploads, dict[str, str], list[str], str]:
    """Four sessions upload for `duration` seconds while `fault` runs; returns the uploads, the
    file.created events (path -> id), the files on disk and what the fault reports."""
    async with serving(settings, frozenset({"sftp", "worker"})) as app:
        org = (await app.accounts.resolve_organization(None)).id
        await add_partner(app, org)
        await app.webhooks.create(org, nickname="r", url=receiver.url, topics=["file.created"])
        out = Uploads()
        until = time.monotonic() + duration
        loaders = [
            asyncio.create_task(_keep_uploading(app.sftp.port, f"s{i}", until, out))
            for i in range(SESSIONS)
        ]
        note = await fault()
        await asyncio.gather(*loaders)
        events = await _created(app)
        on_disk = sorted(p.name for p in (settings.files_root / org).iterdir() if p.is_file())
        await receiver.wait_accepted(events.values(), 30)
        await asyncio.sleep(0.3)
    return out, events, on_disk, note


def _record(
    ledger: Ledger,
    area: str,
    case: str,
    out: Uploads,
    events: dict[str, str],
    on_disk: list[str],
    receiver: FaultyReceiver,
    note: str,
) -> int:
    without_event = [n for n in out.completed if n not in events]
    orphans = [n for n in on_disk if n not in events]
    tally = receiver.tally(events.values())
    lost = len(without_event) + len(orphans) + tally.lost
    ledger.record(
        area,
        case,
        tried=len(out.completed) + len(out.failed),
        lost=lost,
        duplicated=tally.duplicated,
        note=f"{len(out.completed)} uploads completed, {len(out.failed)} refused with an error; "
        f"{note}",
    )
    return lost + tally.duplicated


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


async def test_sqlite_locked_by_another_writer(
    tmp_path: Path,
    host_keys_cache: Path,  # noqa: F811
    ledger: Ledger,
):
    receiver = FaultyReceiver()
    await receiver.start()
    settings = base_settings(tmp_path / "data")
    reuse_host_keys(settings, host_keys_cache)
    db_file = settings.data_dir / "sftphook.db"
    hold = 3.0
    holds = 3 if SOAK else 1

    async def lock() -> str:
        for _ in range(holds):
            await asyncio.sleep(1.0)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", HOLD_LOCK, str(db_file), str(hold),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert proc.stdout is not None
            assert await proc.stdout.readline() == b"locked\n"
            await proc.wait()
        return f"{holds} write lock(s) of {hold:g} s held by another process"

    try:
        out, events, on_disk, note = await _load_with_fault(
            settings, receiver, duration=(holds * 4.5) + 1, fault=lock
        )
    finally:
        await receiver.stop()
    failures = _record(
        ledger,
        "database",
        "SQLite locked by another writer while uploads continue",
        out,
        events,
        on_disk,
        receiver,
        note,
    )
    assert out.completed and failures == 0 and not out.failed


async def test_postgresql_restarted_under_load(
    tmp_path: Path,
    host_keys_cache: Path,  # noqa: F811
    ledger: Ledger,
):
    receiver = FaultyReceiver()
    await receiver.start()
    restarts = 3 if SOAK else 1
    try:
        with private_postgres() as pg:
            settings = base_settings(tmp_path / "data", database_url=pg.url)
            reuse_host_keys(settings, host_keys_cache)

            async def restart() -> str:
                downtime = []
                for _ in range(restarts):
                    await asyncio.sleep(1.5)
                    t0 = time.monotonic()
                    await asyncio.to_thread(pg.stop)
                    await asyncio.to_thread(pg.start)
                    downtime.append(time.monotonic() - t0)
                shown = ", ".join(f"{d:.1f}" for d in downtime)
                return f"PostgreSQL restarted {restarts} time(s), down for {shown} s"

            out, events, on_disk, note = await _load_with_fault(
                settings, receiver, duration=restarts * 4.0 + 3, fault=restart
            )
    finally:
        await receiver.stop()
    failures = _record(
        ledger,
        "database",
        "PostgreSQL restarted while uploads continue",
        out,
        events,
        on_disk,
        receiver,
        note,
    )
    assert out.completed and failures == 0
