"""`events list --follow` from its first moment: on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sftphook.app import App
from sftphook.cli import events as events_cli
from sftphook.config import Settings
from sftphook.events import EventRecord, Topic
from sftphook.store import events as event_store
from tests.conftest import postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[App]:
    async with contextlib.AsyncExitStack() as stack:
        url = None
        if request.param == "postgresql":
            url = await stack.enter_async_context(postgres_database())
        application = App(Settings.load(data_dir=tmp_path / "data", database_url=url))
        await application.prepare()
        try:
            yield application
        finally:
            await application.db.close()


def _event(org_id: str, path: str) -> EventRecord:
    return EventRecord(organization_id=org_id, topic=Topic.FILE_CREATED, actor_id="acme", path=path)


async def test_follow_prints_an_event_committed_while_it_reads_the_past(
    any_app: App, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = any_app
    org = (await app.accounts.resolve_organization(None)).id
    await app.recorder.record(_event(org, "old-1"))
    await app.recorder.record(_event(org, "old-2"))
    real = event_store.list_for
    reads = 0

    async def list_for(*args: Any, **kwargs: Any) -> list[Any]:
        nonlocal reads
        found = await real(*args, **kwargs)
        reads += 1
        if reads == 1:
            # Another session commits an event right after the newest ones were read.
            await app.recorder.record(_event(org, "meanwhile"))
        return found

    monkeypatch.setattr(event_store, "list_for", list_for)
    monkeypatch.setattr(events_cli, "POLL_SECONDS", 0.02)
    following = asyncio.create_task(events_cli._follow(app, None, None, None, 1))
    await asyncio.sleep(0.5)
    following.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await following

    header, *rows = capsys.readouterr().out.splitlines()
    assert [row.split("\t")[3] for row in rows] == ["old-2", "meanwhile"]
