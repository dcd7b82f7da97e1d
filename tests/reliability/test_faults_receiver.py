"""Receivers that fail in each way a real one does: every event still arrives, once, in time.

Each test records a burst of events, points one webhook at a `FaultyReceiver` and counts, at
the receiver, the events never accepted (lost), accepted more than once (duplicated) and first
accepted later than the retry schedule allows once the receiver could take them (late).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from sftphook.app import App
from sftphook.config import Settings
from sftphook.events import EventRecord, Topic
from tests.conftest import serving
from tests.reliability.conftest import SOAK, Ledger
from tests.reliability.fault_receiver import HANG, RESET, Action, Answer, FaultyReceiver

WORKER = frozenset({"worker"})
BURST = 200 if SOAK else 30


def _settings(settings: Settings, **webhooks: Any) -> Settings:
    values: dict[str, Any] = {"retry_jitter": 0.0, "lease_seconds": 30.0}
    values.update(webhooks)
    return settings.model_copy(update={"webhooks": settings.webhooks.model_copy(update=values)})


async def _org(app: App) -> str:
    return (await app.accounts.resolve_organization(None)).id


async def _burst(app: App, org: str, count: int, prefix: str = "burst") -> list[str]:
    events = [
        EventRecord(
            organization_id=org,
            topic=Topic.FILE_CREATED,
            actor_id="partner",
            path=f"inbound/{prefix}-{i}.csv",
            size=i,
        )
        for i in range(count)
    ]
    await asyncio.gather(*(app.recorder.record(e) for e in events))
    return [e.id for e in events]


async def _run(
    settings: Settings,
    receiver: FaultyReceiver,
    *,
    count: int,
    within: float,
    late_by: float,
) -> tuple[list[str], float]:
    """Start the worker, add the webhook, record a burst, wait for it; returns the ids and the
    monotonic time by which each event should have arrived: `late_by`, plus 20 ms an event for
    sending the burst (every try of it) through one process that also runs the receiver."""
    async with serving(settings, WORKER) as app:
        org = await _org(app)
        await app.webhooks.create(org, nickname="r", url=receiver.url, topics=["file.created"])
        t0 = time.monotonic()
        ids = await _burst(app, org, count)
        await receiver.wait_accepted(ids, within)
        await asyncio.sleep(0.3)  # a duplicate would show up right behind the first
    return ids, t0 + late_by + 0.02 * count


@pytest.fixture
async def receiver() -> Any:
    r = FaultyReceiver()
    await r.start()
    yield r
    await r.stop()


async def test_receiver_down_for_the_whole_burst_then_back(settings, ledger: Ledger):
    receiver = FaultyReceiver()  # not started: its port refuses connections
    settings = _settings(settings, retry_schedule=[1.0] * 20, timeout=2.0)
    down_for = 3.0
    try:
        async with serving(settings, WORKER) as app:
            org = await _org(app)
            await app.webhooks.create(org, nickname="r", url=receiver.url, topics=["file.created"])
            ids = await _burst(app, org, BURST)
            await asyncio.sleep(down_for)
            assert not receiver.accepted
            await receiver.start()
            back = time.monotonic()
            await receiver.wait_accepted(ids, 20)
            await asyncio.sleep(0.3)
        # Once back, every event is due within one retry step (1 s) plus sending time.
        tally = receiver.tally(ids, late_after=back + 1.0 + 3.0)
    finally:
        await receiver.stop()
    ledger.record(
        "receiver",
        f"down for the whole burst ({BURST} events), back after {down_for:g} s",
        tried=tally.tried,
        lost=tally.lost,
        duplicated=tally.duplicated,
        late=tally.late,
    )
    assert tally.lost == tally.duplicated == tally.late == 0


async def test_slow_receiver_within_the_timeout(settings, receiver, ledger: Ledger):
    # 9 s answers against the default 10 s timeout: accepted once, never retried.
    receiver.behaviour = lambda event_id, n: Answer(delay=9.0)
    settings = _settings(settings, retry_schedule=[1.0, 1.0], timeout=10.0)
    count = 3
    ids, deadline = await _run(settings, receiver, count=count, within=20, late_by=9.0 + 3.0)
    tally = receiver.tally(ids, late_after=deadline)
    retried = sum(len(receiver.tries[i]) - 1 for i in ids)
    ledger.record(
        "receiver",
        "slow: answers after 9 s (timeout 10 s)",
        tried=tally.tried,
        lost=tally.lost,
        duplicated=tally.duplicated,
        late=tally.late,
        note=f"{retried} retries",
    )
    assert tally.lost == tally.duplicated == tally.late == retried == 0


async def test_receiver_hanging_past_the_timeout(settings, receiver, ledger: Ledger):
    receiver.behaviour = lambda event_id, n: HANG if n == 1 else Answer()
    settings = _settings(settings, retry_schedule=[0.5] * 5, timeout=1.0)
    # Every send slot is held for the whole timeout by a hanging first try.
    rounds = -(-BURST // settings.webhooks.workers)
    ids, deadline = await _run(
        settings, receiver, count=BURST, within=30, late_by=rounds * 1.0 + 0.5 + 3.0
    )
    tally = receiver.tally(ids, late_after=deadline)
    ledger.record(
        "receiver",
        "hangs past the timeout on the first try (timeout 1 s)",
        tried=tally.tried,
        lost=tally.lost,
        duplicated=tally.duplicated,
        late=tally.late,
    )
    assert tally.lost == tally.duplicated == tally.late == 0


async def test_receiver_resetting_connections(settings, receiver, ledger: Ledger):
    receiver.behaviour = lambda event_id, n: RESET if n <= 2 else Answer()
    settings = _settings(settings, retry_schedule=[0.3] * 5, timeout=2.0)
    ids, deadline = await _run(settings, receiver, count=BURST, within=15, late_by=0.6 + 3.0)
    tally = receiver.tally(ids, late_after=deadline)
    ledger.record(
        "receiver",
        "resets the connection on the first two tries",
        tried=tally.tried,
        lost=tally.lost,
        duplicated=tally.duplicated,
        late=tally.late,
    )
    assert tally.lost == tally.duplicated == tally.late == 0


async def test_receiver_answering_500_then_200(settings, receiver, ledger: Ledger):
    receiver.behaviour = lambda event_id, n: Answer(status=500) if n == 1 else Answer()
    settings = _settings(settings, retry_schedule=[0.3] * 5, timeout=2.0)
    ids, deadline = await _run(settings, receiver, count=BURST, within=15, late_by=0.3 + 3.0)
    tally = receiver.tally(ids, late_after=deadline)
    ledger.record(
        "receiver",
        "answers 500, then 200",
        tried=tally.tried,
        lost=tally.lost,
        duplicated=tally.duplicated,
        late=tally.late,
    )
    assert tally.lost == tally.duplicated == tally.late == 0


async def test_receiver_answering_429_with_retry_after(settings, receiver, ledger: Ledger):
    wait = 2

    def busy_once(event_id: str, n: int) -> Action:
        return Answer(status=429, headers={"Retry-After": str(wait)}) if n == 1 else Answer()

    receiver.behaviour = busy_once
    # The schedule says 0.2 s; Retry-After says 2 s and wins.
    settings = _settings(settings, retry_schedule=[0.2] * 5, timeout=2.0)
    ids, deadline = await _run(settings, receiver, count=BURST, within=15, late_by=wait + 3.0)
    tally = receiver.tally(ids, late_after=deadline)
    early = sum(1 for i in ids if receiver.tries[i][1] - receiver.tries[i][0] < wait - 0.05)
    ledger.record(
        "receiver",
        f"answers 429 with Retry-After: {wait}, then 200",
        tried=tally.tried,
        lost=tally.lost,
        duplicated=tally.duplicated,
        late=tally.late,
        note=f"{early} retried before Retry-After",
    )
    assert tally.lost == tally.duplicated == tally.late == early == 0


async def test_receiver_answering_410(settings, ledger: Ledger):
    """410 Gone pauses the webhook; what arrives meanwhile is held, not dropped, and an
    operator's resume plus a re-send of the failed deliveries brings every event."""
    gone = {"on": True}
    receiver = FaultyReceiver(lambda event_id, n: Answer(status=410 if gone["on"] else 200))
    await receiver.start()
    settings = _settings(settings, retry_schedule=[0.3] * 5, timeout=2.0)
    try:
        async with serving(settings, WORKER) as app:
            org = await _org(app)
            hook, _ = await app.webhooks.create(
                org, nickname="r", url=receiver.url, topics=["file.created"]
            )
            ids = await _burst(app, org, BURST)
            for _ in range(100):
                if (await app.webhooks.get(org, hook.id)).state == "paused":
                    break
                await asyncio.sleep(0.05)
            paused = (await app.webhooks.get(org, hook.id)).state == "paused"
            ids += await _burst(app, org, 5, prefix="while-paused")
            await asyncio.sleep(1.0)
            tries_while_paused = sum(len(v) for v in receiver.tries.values())
            await asyncio.sleep(1.0)
            sent_after_pause = sum(len(v) for v in receiver.tries.values()) - tries_while_paused
            gone["on"] = False
            await app.webhooks.resume(org, hook.id)
            await app.webhooks.redeliver_failed(org, hook.id)
            back = time.monotonic()
            await receiver.wait_accepted(ids, 15)
            await asyncio.sleep(0.3)
        tally = receiver.tally(ids, late_after=back + 3.0)
    finally:
        await receiver.stop()
    ledger.record(
        "receiver",
        "answers 410 Gone (webhook paused; resumed and failed ones re-sent)",
        tried=tally.tried,
        lost=tally.lost,
        duplicated=tally.duplicated,
        late=tally.late,
        note=f"paused: {paused}; {sent_after_pause} requests sent while paused",
    )
    assert paused and sent_after_pause == 0
    assert tally.lost == tally.duplicated == tally.late == 0


async def test_receiver_flapping(settings, ledger: Ledger):
    """Up and down every 1.5 s while events keep coming."""
    receiver = FaultyReceiver()
    await receiver.start()
    settings = _settings(settings, retry_schedule=[0.5] * 30, timeout=2.0)
    period = 1.5
    duration = 30.0 if SOAK else 6.0
    ids: list[str] = []

    async def flap() -> None:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            await asyncio.sleep(period)
            if receiver.up:
                await receiver.stop()
            else:
                await receiver.start()

    try:
        async with serving(settings, WORKER) as app:
            org = await _org(app)
            await app.webhooks.create(org, nickname="r", url=receiver.url, topics=["file.created"])
            flapping = asyncio.create_task(flap())
            while not flapping.done():
                ids += await _burst(app, org, 3, prefix=f"f{len(ids)}")
                await asyncio.sleep(0.1)
            await flapping
            if not receiver.up:
                await receiver.start()
            settled = time.monotonic()
            await receiver.wait_accepted(ids, 20)
            await asyncio.sleep(0.3)
        tally = receiver.tally(ids, late_after=settled + 0.5 + 3.0)
    finally:
        await receiver.stop()
    ledger.record(
        "receiver",
        f"flaps (down/up every {period:g} s for {duration:g} s)",
        tried=tally.tried,
        lost=tally.lost,
        duplicated=tally.duplicated,
        late=tally.late,
    )
    assert tally.lost == tally.duplicated == tally.late == 0
