import asyncio

import pytest
from sqlalchemy import func, select

from sftphook.events import EventRecord, EventRecorder, Topic
from sftphook.store.models import Event


async def _org_id(app) -> str:
    return (await app.accounts.resolve_organization(None)).id


async def test_record_commits_before_returning(app):
    org = await _org_id(app)
    event = EventRecord(organization_id=org, topic=Topic.FILE_CREATED, actor_id="u", path="a.txt")
    await app.recorder.record(event)
    async with app.db.session() as s:
        row = await s.get(Event, event.id)
    assert row is not None and row.path == "a.txt" and row.topic == "file.created"


async def test_concurrent_records_share_commits_and_all_land(app):
    org = await _org_id(app)
    recorder = EventRecorder(app.db)
    commits: list[int] = []
    recorder.add_commit_hook(lambda events: commits.append(len(events)))
    # The first event of the burst commits in its caller, at once; the others, in the same turn
    # of the loop, share the writer's next commits.
    started = asyncio.Event()
    writer = asyncio.create_task(recorder.run(started))
    await started.wait()
    events = [
        EventRecord(organization_id=org, topic=Topic.FILE_CREATED, actor_id="u", path=f"f{i}")
        for i in range(200)
    ]
    await asyncio.gather(*(recorder.record(e) for e in events))
    await recorder.close()
    await writer
    async with app.db.session() as s:
        count = await s.scalar(select(func.count()).select_from(Event))
    assert count == 200
    assert sum(commits) == 200
    assert commits[0] == 1
    assert len(commits) <= 3  # grouped: the rest of the burst in one or two transactions


async def test_listener_failure_rolls_back_the_event(app):
    org = await _org_id(app)
    recorder = EventRecorder(app.db)

    async def broken(session, events):
        raise RuntimeError("listener failed")

    recorder.add_listener(broken)
    event = EventRecord(organization_id=org, topic=Topic.FILE_DELETED, actor_id="u", path="x")
    with pytest.raises(RuntimeError):
        await recorder.record(event)
    async with app.db.session() as s:
        assert await s.get(Event, event.id) is None


async def test_sync_listener_writes_in_the_events_transaction(app):
    org = await _org_id(app)
    recorder = EventRecorder(app.db)
    seen: list[int] = []

    def counting(connection, events):
        # Runs before the commit, in the same transaction: the events are already visible.
        ids = [e.id for e in events]
        seen.append(
            connection.execute(
                select(func.count()).select_from(Event).where(Event.id.in_(ids))
            ).scalar_one()
        )

    recorder.add_sync_listener(counting)
    event = EventRecord(organization_id=org, topic=Topic.FILE_CREATED, actor_id="u", path="s")
    await recorder.record(event)
    assert seen == [1]

    def broken(connection, events):
        raise RuntimeError("sync listener failed")

    recorder.add_sync_listener(broken)
    lost = EventRecord(organization_id=org, topic=Topic.FILE_CREATED, actor_id="u", path="t")
    with pytest.raises(RuntimeError, match="sync listener failed"):
        await recorder.record(lost)
    async with app.db.session() as s:
        assert await s.get(Event, event.id) is not None
        assert await s.get(Event, lost.id) is None


async def test_sync_and_async_listeners_share_one_transaction(app):
    org = await _org_id(app)
    recorder = EventRecorder(app.db)
    calls: list[str] = []
    recorder.add_sync_listener(lambda connection, events: calls.append("sync"))

    async def broken(session, events):
        calls.append("async")
        raise RuntimeError("async listener failed")

    recorder.add_listener(broken)
    event = EventRecord(organization_id=org, topic=Topic.FILE_CREATED, actor_id="u", path="m")
    with pytest.raises(RuntimeError):
        await recorder.record(event)
    assert calls == ["sync", "async"]
    async with app.db.session() as s:
        assert await s.get(Event, event.id) is None


async def test_closed_recorder_refuses_new_events(app):
    org = await _org_id(app)
    recorder = EventRecorder(app.db)
    await recorder.close()
    with pytest.raises(RuntimeError):
        await recorder.record(
            EventRecord(organization_id=org, topic=Topic.FILE_CREATED, actor_id="u", path="y")
        )


def test_event_path_must_be_relative():
    with pytest.raises(ValueError):
        EventRecord(organization_id="o", topic=Topic.FILE_CREATED, actor_id="u", path="/abs")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_unreachable_database_is_tried_again_until_the_event_lands(app, kind):
    from sqlalchemy.exc import OperationalError

    org = await _org_id(app)
    recorder = EventRecorder(app.db, retry_for=5.0)
    failures = {"left": 2}

    def fail_twice() -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("INSERT", {}, ConnectionResetError("server restarting"))

    async def flaky(session, events):
        fail_twice()

    if kind == "sync":
        recorder.add_sync_listener(lambda connection, events: fail_twice())
    else:
        recorder.add_listener(flaky)
    event = EventRecord(organization_id=org, topic=Topic.FILE_CREATED, actor_id="u", path="r")
    await recorder.record(event)
    async with app.db.session() as s:
        assert await s.get(Event, event.id) is not None
    assert failures["left"] == 0


async def test_unreachable_database_gives_up_after_retry_for(app):
    from sqlalchemy.exc import OperationalError

    org = await _org_id(app)
    recorder = EventRecorder(app.db, retry_for=0.5)

    async def down(session, events):
        raise OperationalError("INSERT", {}, ConnectionRefusedError("down"))

    recorder.add_listener(down)
    event = EventRecord(organization_id=org, topic=Topic.FILE_CREATED, actor_id="u", path="d")
    with pytest.raises(OperationalError):
        await recorder.record(event)


async def test_a_lone_event_commits_in_its_caller_and_its_failure_is_the_callers(app):
    org = await _org_id(app)
    recorder = EventRecorder(app.db)
    fail = {"next": True}

    def listener(connection, events):
        if fail["next"]:
            fail["next"] = False
            raise RuntimeError("listener failed")

    recorder.add_sync_listener(listener)
    started = asyncio.Event()
    writer = asyncio.create_task(recorder.run(started))
    await started.wait()
    first, second = (
        EventRecord(organization_id=org, topic=Topic.FILE_CREATED, actor_id="u", path=name)
        for name in ("first", "second")
    )
    with pytest.raises(RuntimeError, match="listener failed"):
        await recorder.record(first)
    # The writer task never saw either: nothing queued, and the group lock is free again.
    await recorder.record(second)
    assert recorder._queue.empty() and not recorder._group.locked()
    await recorder.close()
    await writer
    async with app.db.session() as s:
        assert await s.get(Event, first.id) is None
        assert await s.get(Event, second.id) is not None


async def test_the_writer_stops_only_after_a_lone_event_in_its_callers_commit(app):
    org = await _org_id(app)
    recorder = EventRecorder(app.db)
    go_on = asyncio.Event()

    async def slow(session, events):
        await go_on.wait()

    recorder.add_listener(slow)
    started = asyncio.Event()
    writer = asyncio.create_task(recorder.run(started))
    await started.wait()
    event = EventRecord(organization_id=org, topic=Topic.FILE_CREATED, actor_id="u", path="x")
    recording = asyncio.create_task(recorder.record(event))
    await asyncio.sleep(0.05)
    assert recorder._group.locked()  # committing in its caller, not through the queue
    await recorder.close()
    await asyncio.sleep(0.05)
    assert not writer.done()
    go_on.set()
    await writer
    assert recording.done() and recording.exception() is None
    async with app.db.session() as s:
        assert await s.get(Event, event.id) is not None
