"""Load: 50 SFTP sessions uploading at once with two webhooks on, and a burst of events. Every
event is accounted for: events in the store = uploads completed, deliveries succeeded = events x
webhooks, each event accepted once by each receiver."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import func, select

from sftphook.events import EventRecord, Topic
from sftphook.store.models import Delivery
from tests.conftest import serving
from tests.reliability.conftest import SOAK, Ledger
from tests.reliability.fault_receiver import FaultyReceiver
from tests.reliability.serve_process import (
    ServeProcess,
    Store,
    base_settings,
    connect,
    content,
    prepare,
    serve_env,
)
from tests.sftp.conftest import host_keys_cache  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e

SESSIONS = 50
# Default: each session uploads a few files; soak: they keep uploading for a minute.
FILES_PER_SESSION = 4
SOAK_SECONDS = 60.0
BURST = 10_000 if SOAK else 2_000


async def _session(port: int, index: int, completed: list[str], failed: list[str]) -> None:
    until = time.monotonic() + SOAK_SECONDS if SOAK else None
    n = 0
    try:
        # Each session from an address of its own, as partners are: one address may hold at
        # most `sftp.max_connections_per_address` (20) connections.
        source = f"127.0.{index // 250}.{2 + index % 250}"
        async with await connect(port, source) as conn, conn.start_sftp_client() as sftp:
            while (n < FILES_PER_SESSION) if until is None else (time.monotonic() < until):
                name = f"s{index}-{n}.dat"
                n += 1
                try:
                    async with sftp.open(name, "wb") as f:
                        await f.write(content(name, 16 * 1024))
                except asyncssh.SFTPError:
                    failed.append(name)
                    continue
                completed.append(name)
    except (OSError, asyncssh.Error):
        failed.append(f"session {index}")


async def test_fifty_sessions_uploading_with_webhooks(
    tmp_path: Path,
    host_keys_cache: Path,  # noqa: F811
    ledger: Ledger,
):
    receivers = [FaultyReceiver(), FaultyReceiver()]
    for r in receivers:
        await r.start()
    data_dir = tmp_path / "data"
    settings = base_settings(data_dir)
    await prepare(settings, host_keys_cache, [r.url for r in receivers])
    server = ServeProcess(serve_env(data_dir, {"retry_schedule": "[1, 1, 1]"}), tmp_path / "log")
    store = Store(settings)
    completed: list[str] = []
    failed: list[str] = []
    try:
        port = await server.start()
        t0 = time.monotonic()
        await asyncio.gather(*(_session(port, i, completed, failed) for i in range(SESSIONS)))
        took = time.monotonic() - t0
        ids = await store.event_ids()
        for r in receivers:
            await r.wait_accepted(ids.values(), 180 if SOAK else 60)
        await asyncio.sleep(0.5)
        succeeded = (await store.deliveries_by_status()).get("succeeded", 0)
        tallies = [r.tally(ids.values()) for r in receivers]
        code = await server.signal(signal.SIGTERM)
    finally:
        await server.close()
        await store.close()
        for r in receivers:
            await r.stop()
    without_event = [n for n in completed if n not in ids]
    lost = len(without_event) + sum(t.lost for t in tallies)
    lost += len(ids) * len(receivers) - succeeded if succeeded < len(ids) * len(receivers) else 0
    ledger.record(
        "load",
        f"{SESSIONS} SFTP sessions uploading at once, 2 webhooks",
        tried=len(completed) + len(failed),
        lost=lost,
        duplicated=sum(t.duplicated for t in tallies),
        crashed=int(code != 0),
        note=f"{len(completed)} uploads in {took:.1f} s, {len(failed)} refused; {len(ids)} events, "
        f"{succeeded} deliveries succeeded",
    )
    assert not failed and len(ids) == len(completed)
    assert succeeded == len(ids) * len(receivers)
    assert lost == 0 and all(t.duplicated == 0 for t in tallies) and code == 0


async def test_burst_of_events(settings, ledger: Ledger):
    receiver = FaultyReceiver()
    await receiver.start()
    hooks = settings.webhooks.model_copy(update={"retry_schedule": [1.0] * 5})
    settings = settings.model_copy(update={"webhooks": hooks})
    try:
        async with serving(settings, frozenset({"worker"})) as app:
            org = (await app.accounts.resolve_organization(None)).id
            await app.webhooks.create(org, nickname="r", url=receiver.url, topics=["file.created"])
            events = [
                EventRecord(
                    organization_id=org,
                    topic=Topic.FILE_CREATED,
                    actor_id="partner",
                    path=f"burst/{i}.csv",
                    size=i,
                )
                for i in range(BURST)
            ]
            t0 = time.monotonic()
            await asyncio.gather(*(app.recorder.record(e) for e in events))
            recorded = time.monotonic() - t0
            ids = [e.id for e in events]
            await receiver.wait_accepted(ids, 240 if SOAK else 60)
            took = time.monotonic() - t0
            await asyncio.sleep(0.5)
            async with app.db.session() as s:
                succeeded = await s.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.status == "succeeded")
                )
        tally = receiver.tally(ids)
    finally:
        await receiver.stop()
    ledger.record(
        "load",
        f"burst of {BURST:,} events, 1 webhook",
        tried=tally.tried,
        lost=tally.lost + max(0, BURST - (succeeded or 0)),
        duplicated=tally.duplicated,
        note=f"recorded in {recorded:.1f} s, all delivered in {took:.1f} s; "
        f"{succeeded} deliveries succeeded",
    )
    assert tally.lost == tally.duplicated == 0 and succeeded == BURST
