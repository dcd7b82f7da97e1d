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
    assert len(commits) < 200  # grouped: fewer transactions than events


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


async def test_unreachable_database_is_tried_again_until_the_event_lands(app):
    from sqlalchemy.exc import OperationalError

    org = await _org_id(app)
    recorder = EventRecorder(app.db, retry_for=5.0)
    failures = {"left": 2}

    async def flaky(session, events):
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("INSERT", {}, ConnectionResetError("server restarting"))

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
