"""What a retention prune costs the SFTP front: how long event commits wait while it runs.

    PYTHONPATH=src .venv/bin/python bench/retention.py [--recent 1000000] [--old 0]
    PYTHONPATH=/tmp/base/src .venv/bin/python bench/retention.py ...   # another version

Seeds a fresh SQLite database (a temporary directory) as an hourly prune finds it with the
default windows (deliveries 30 days, events 90): `--old` events past 90 days, whose deliveries
went at 30 days; `--expiring` events 35 days old, whose finished deliveries are now past their
window; `--recent` events of the last day, each with a finished delivery. Then records events
one after another, as one SFTP client uploading files does (`EventRecorder.record()`, the
recorder's writer task running as in the server): first alone (the baseline), then while
`Pruner.prune()` removes what is past its window, and once more while a prune that finds
nothing runs (each prune run ends with such a search). Prints the record latencies of each
phase and their ratio to the baseline, and what each prune took.

On SQLite an event's commit needs the one write lock, which a prune's transaction holds: the
longer a batch's transaction, the longer an upload's close waits for its event.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import Connection

from sftphook.config import RetentionSettings
from sftphook.events.model import EventRecord, Topic
from sftphook.events.recorder import EventRecorder
from sftphook.retention import DAY_MS, Pruner
from sftphook.store import Database
from sftphook.store.ids import ordered_id
from sftphook.store.models import Delivery, Event, Organization, Webhook, new_id, now_ms

WINDOWS = RetentionSettings(deliveries_days=30, events_days=90)
CHUNK = 50_000


def _seed(recent: int, expiring: int, old: int, now: int):  # type: ignore[no-untyped-def]
    def seed(connection: Connection) -> None:
        connection.execute(Organization.__table__.insert(), {"id": "org", "name": "org"})
        hook = {
            "id": new_id(),
            "organization_id": "org",
            "nickname": "bench",
            "url": "https://example.com/",
            "topics": ["file.created"],
            "secret_encrypted": "x",
        }
        connection.execute(Webhook.__table__.insert(), [hook])
        # The old first, as time leaves them: (count, age in days, with deliveries).
        groups = ((old, 100, False), (expiring, 35, True), (recent, 1, True))
        i = 0
        for count, age, delivered in groups:
            for start in range(0, count, CHUNK):
                events = [
                    {
                        "id": ordered_id(),
                        "organization_id": "org",
                        "topic": "file.created",
                        "actor_id": "bench",
                        "path": f"inbound/file-{i + n:07d}.dat",
                        "created_at": now - age * DAY_MS,
                    }
                    for n in range(min(CHUNK, count - start))
                ]
                i += len(events)
                connection.execute(Event.__table__.insert(), events)
                if not delivered:
                    continue
                connection.execute(
                    Delivery.__table__.insert(),
                    [
                        {
                            "id": ordered_id(),
                            "organization_id": "org",
                            "webhook_id": hook["id"],
                            "event_id": e["id"],
                            "topic": "file.created",
                            "status": "succeeded",
                            "created_at": e["created_at"],
                            "updated_at": e["created_at"],
                            "completed_at": e["created_at"],
                        }
                        for e in events
                    ],
                )

    return seed


async def _record_until(
    recorder: EventRecorder, done: asyncio.Event, *, at_least: int
) -> list[float]:
    latencies: list[float] = []
    i = 0
    while not done.is_set() or i < at_least:
        event = EventRecord(
            organization_id="org",
            topic=Topic.FILE_CREATED,
            actor_id="bench",
            path=f"new/file-{i:06d}.dat",
            size=4096,
            sha256="0" * 64,
            protocol="SFTP",
            client_ip="127.0.0.1",
            session_id="bench",
        )
        began = time.perf_counter()
        await recorder.record(event)
        latencies.append(time.perf_counter() - began)
        i += 1
        # An SFTP client's other requests between two closes (~1 ms per small file).
        await asyncio.sleep(0.001)
    return latencies


def _line(what: str, latencies: list[float], baseline: list[float] | None) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    worst = ordered[-1]
    text = (
        f"{what:<28} {len(ordered):>7} {statistics.median(ordered) * 1e3:>9.2f} "
        f"{p99 * 1e3:>9.2f} {worst * 1e3:>9.2f}"
    )
    if baseline is not None:
        base = sorted(baseline)
        base_p99 = base[min(len(base) - 1, int(len(base) * 0.99))]
        text += f" {p99 / base_p99:>10.1f} {worst / base[-1]:>10.1f}"
    return text


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recent", type=int, default=1_000_000)
    parser.add_argument("--expiring", type=int, default=20_000)
    parser.add_argument("--old", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    now = now_ms()
    with tempfile.TemporaryDirectory(prefix="sftphook-bench-retention-") as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'sftphook.db'}")
        await db.upgrade()
        began = time.perf_counter()
        async with db.engine.begin() as conn:
            await conn.run_sync(_seed(args.recent, args.expiring, args.old, now))
        print(
            f"seeded {args.recent:,} recent events and {args.expiring:,} 35 days old (one "
            f"delivery each), {args.old:,} past 90 days (none), in "
            f"{time.perf_counter() - began:.1f} s"
        )
        recorder = EventRecorder(db)
        started = asyncio.Event()
        writer = asyncio.create_task(recorder.run(started))
        await started.wait()
        pruner = Pruner(db, WINDOWS, batch=args.batch)

        idle = asyncio.Event()
        idle.set()
        baseline = await _record_until(recorder, idle, at_least=2000)

        results: list[tuple[str, list[float], float, str]] = []
        for what in ("prune of the old rows", "prune that finds nothing"):
            done = asyncio.Event()
            recording = asyncio.create_task(_record_until(recorder, done, at_least=200))
            began = time.perf_counter()
            removed = await pruner.prune(now)
            took = time.perf_counter() - began
            done.set()
            removed_text = f"{removed.events:,} events, {removed.deliveries:,} deliveries"
            results.append((what, await recording, took, removed_text))

        await recorder.close()
        await writer
        await db.close()

    print()
    print(
        f"{'event record() latency':<28} {'events':>7} {'median ms':>9} {'p99 ms':>9} "
        f"{'max ms':>9} {'p99 ratio':>10} {'max ratio':>10}"
    )
    print(_line("alone (baseline)", baseline, None))
    for what, latencies, _, _ in results:
        print(_line(f"during {what}", latencies, baseline))
    print()
    for what, _, took, removed_text in results:
        print(f"{what}: {took:.2f} s, removed {removed_text}")


if __name__ == "__main__":
    asyncio.run(main())
