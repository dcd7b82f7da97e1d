"""A real `sftphook serve` killed or stopped at the worst moments: uploads, committed events and
deliveries survive the restart, and nothing half-done becomes visible."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from sftphook.storage.local import UPLOADS_DIR
from sftphook.storage.spares import SPARES_DIR
from tests.reliability.conftest import SOAK, Ledger
from tests.reliability.fault_receiver import HANG, Answer, FaultyReceiver, eventually
from tests.reliability.serve_process import (
    ServeProcess,
    Store,
    base_settings,
    connect,
    content,
    prepare,
    serve_env,
    upload,
)
from tests.sftp.conftest import host_keys_cache  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e

FILES = 40 if SOAK else 10


async def _slow_upload(port: int, name: str, written: list[int]) -> None:
    """Write forever in small pieces, so that the kill always lands mid-upload."""
    async with (
        await connect(port) as conn,
        conn.start_sftp_client() as sftp,
        sftp.open(name, "wb") as f,
    ):
        offset = 0
        while True:
            await f.write(content(name, 32 * 1024), offset)
            offset += 32 * 1024
            written.append(offset)
            await asyncio.sleep(0.02)


async def test_sigkill_during_uploads(tmp_path: Path, host_keys_cache: Path, ledger: Ledger):  # noqa: F811
    receiver = FaultyReceiver()
    await receiver.start()
    data_dir = tmp_path / "data"
    settings = base_settings(data_dir)
    org = await prepare(settings, host_keys_cache, [receiver.url])
    env = serve_env(data_dir, {"retry_schedule": "[0.5, 0.5, 0.5]", "lease_seconds": "2"})
    server = ServeProcess(env, tmp_path / "serve.log")
    complete = {f"done-{i}.bin": content(f"done-{i}", 100_000 + i) for i in range(FILES)}
    interrupted = [f"cut-{i}.bin" for i in range(4)]
    store = Store(settings)
    try:
        port = await server.start()
        await upload(port, complete)
        progress: dict[str, list[int]] = {name: [] for name in interrupted}
        writers = [asyncio.create_task(_slow_upload(port, n, progress[n])) for n in interrupted]
        await eventually(lambda: all(len(p) >= 5 for p in progress.values()), 30)
        await server.kill()
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)

        root = settings.files_root / org
        visible_partial = sum(1 for n in interrupted if (root / n).exists())
        phantom = sum(1 for p in await store.created_paths() if p in interrupted)

        port = await server.start()
        # After the restart: nothing left of the killed uploads (in either temporary directory;
        # the spare files made since are empty).
        left_temp = sum(
            1
            for directory in (UPLOADS_DIR, SPARES_DIR)
            for path in (settings.files_root / directory).rglob("*")
            if path.is_file() and (directory == UPLOADS_DIR or path.stat().st_size > 0)
        )
        corrupt = 0
        async with await connect(port) as conn, conn.start_sftp_client() as sftp:
            listed = set(await sftp.listdir("."))
            for name, data in complete.items():
                async with sftp.open(name, "rb") as f:
                    if await f.read() != data:
                        corrupt += 1
        visible_partial += sum(1 for n in interrupted if n in listed)
        ids = await store.event_ids(list(complete))
        missing_events = len(complete) - len(ids)
        await receiver.wait_accepted(ids.values(), 15)
        await asyncio.sleep(0.3)
        tally = receiver.tally(ids.values())
        await server.signal(signal.SIGTERM)
    finally:
        await server.close()
        await store.close()
        await receiver.stop()
    ledger.record(
        "server",
        f"SIGKILL during {len(interrupted)} uploads ({len(complete)} finished before)",
        tried=len(complete) + len(interrupted),
        lost=missing_events + corrupt + tally.lost,
        duplicated=tally.duplicated,
        leaked=visible_partial + phantom + left_temp,
        note=f"partial files visible: {visible_partial}, file.created for cut uploads: {phantom}, "
        f"temporary files left after restart: {left_temp}, corrupt files: {corrupt}",
    )
    assert visible_partial == phantom == left_temp == corrupt == missing_events == 0
    assert tally.lost == tally.duplicated == 0


async def test_sigkill_between_event_commit_and_delivery(
    tmp_path: Path,
    host_keys_cache: Path,  # noqa: F811
    ledger: Ledger,
):
    receiver = FaultyReceiver()  # down: every event is committed, none delivered
    data_dir = tmp_path / "data"
    settings = base_settings(data_dir)
    await prepare(settings, host_keys_cache, [receiver.url])
    # A delivery claimed just before the kill waits for its lease (2 s here) to run out.
    env = serve_env(
        data_dir,
        {"retry_schedule": "[1.0, 1.0, 1.0, 1.0, 1.0]", "timeout": "2", "lease_seconds": "2"},
    )
    server = ServeProcess(env, tmp_path / "serve.log")
    files = {f"f-{i}.csv": content(f"f-{i}", 1000) for i in range(FILES)}
    store = Store(settings)
    try:
        port = await server.start()
        await upload(port, files)
        await server.kill()
        ids = await store.event_ids(list(files))
        pending = await store.deliveries_by_status()
        await receiver.start()
        await server.start()
        back = time.monotonic()
        await receiver.wait_accepted(ids.values(), 20)
        await asyncio.sleep(0.3)
        tally = receiver.tally(ids.values(), late_after=back + 2.0 + 3.0)
        await server.signal(signal.SIGTERM)
    finally:
        await server.close()
        await store.close()
        await receiver.stop()
    ledger.record(
        "server",
        f"SIGKILL with {len(files)} events committed and not yet delivered",
        tried=len(files),
        lost=len(files) - len(ids) + tally.lost,
        duplicated=tally.duplicated,
        late=tally.late,
        note="deliveries at the kill: "
        + ", ".join(f"{status} {n}" for status, n in sorted(pending.items())),
    )
    assert len(ids) == len(files)
    assert tally.lost == tally.duplicated == tally.late == 0


async def test_sigkill_during_deliveries(tmp_path: Path, host_keys_cache: Path, ledger: Ledger):  # noqa: F811
    # The first try of every event hangs at the receiver: the kill lands with all in flight.
    receiver = FaultyReceiver(lambda event_id, n: HANG if n == 1 else Answer())
    await receiver.start()
    data_dir = tmp_path / "data"
    settings = base_settings(data_dir)
    await prepare(settings, host_keys_cache, [receiver.url])
    env = serve_env(data_dir, {"retry_schedule": "[0.5, 0.5]", "lease_seconds": "2"})
    server = ServeProcess(env, tmp_path / "serve.log")
    files = {f"d-{i}.csv": content(f"d-{i}", 1000) for i in range(FILES)}
    store = Store(settings)
    try:
        port = await server.start()
        await upload(port, files)
        await eventually(lambda: len(receiver.tries) >= len(files), 20)
        await server.kill()
        receiver.release_hangs()
        ids = await store.event_ids(list(files))
        await server.start()
        back = time.monotonic()
        await receiver.wait_accepted(ids.values(), 20)
        await asyncio.sleep(0.3)
        # Leases of the killed process run out after 2 s, then the deliveries are sent again.
        tally = receiver.tally(ids.values(), late_after=back + 2.0 + 3.0)
        await server.signal(signal.SIGTERM)
    finally:
        await server.close()
        await store.close()
        await receiver.stop()
    ledger.record(
        "server",
        f"SIGKILL with {len(files)} deliveries in flight (redelivered after restart)",
        tried=len(files),
        lost=len(files) - len(ids) + tally.lost,
        duplicated=tally.duplicated,
        late=tally.late,
    )
    assert tally.lost == tally.duplicated == tally.late == 0


async def test_sigterm_with_a_backlog(tmp_path: Path, host_keys_cache: Path, ledger: Ledger):  # noqa: F811
    receiver = FaultyReceiver(lambda event_id, n: Answer(delay=0.5))
    await receiver.start()
    data_dir = tmp_path / "data"
    settings = base_settings(data_dir)
    await prepare(settings, host_keys_cache, [receiver.url])
    # Two send slots against 0.5 s answers: the uploads outrun the deliveries.
    env = serve_env(data_dir, {"workers": "2", "retry_schedule": "[0.5, 0.5]"})
    server = ServeProcess(env, tmp_path / "serve.log")
    count = FILES * 3
    files = {f"b-{i}.csv": content(f"b-{i}", 500) for i in range(count)}
    store = Store(settings)
    try:
        port = await server.start()
        await upload(port, files)
        t0 = time.monotonic()
        code = await server.signal(signal.SIGTERM)
        stopped_in = time.monotonic() - t0
        ids = await store.event_ids(list(files))
        at_stop = await store.deliveries_by_status()
        delivered_before = len(receiver.accepted)
        await server.start()
        # What is left goes two at a time, 0.5 s each.
        await receiver.wait_accepted(ids.values(), count * 0.25 + 20)
        await asyncio.sleep(0.6)
        tally = receiver.tally(ids.values())
        await server.signal(signal.SIGTERM)
    finally:
        await server.close()
        await store.close()
        await receiver.stop()
    left = at_stop.get("pending", 0) + at_stop.get("retrying", 0)
    ledger.record(
        "server",
        f"SIGTERM with a backlog of {count} deliveries",
        tried=count,
        lost=count - len(ids) + tally.lost,
        duplicated=tally.duplicated,
        crashed=int(code != 0),
        note=f"stopped in {stopped_in:.1f} s with exit code {code}; {delivered_before} delivered "
        f"before the stop, {left} left for the next start",
    )
    assert code == 0
    assert delivered_before + left == count
    assert tally.lost == tally.duplicated == 0
