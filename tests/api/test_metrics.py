"""`/metrics` reads the unfinished deliveries from the store, through `ix_deliveries_due`: what a
scrape costs follows the queue, not the 30 days of finished deliveries kept beside it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import nullcontext
from typing import Any

import httpx
import pytest
from sqlalchemy import event as sa_event

from sftphook.app import App
from sftphook.config import Settings
from sftphook.store.models import Delivery, Event, Webhook, now_ms
from tests.conftest import postgres_database, serving

# Status -> how many deliveries to store in it.
SEEDED = {"pending": 2, "retrying": 1, "held": 3, "succeeded": 4, "failed": 5, "skipped": 1}


@pytest.fixture(params=["sqlite", "postgresql"])
async def http_node(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[App]:
    """A node with the `http` role only: no worker touches the seeded deliveries."""
    async with postgres_database() if request.param == "postgresql" else nullcontext(None) as url:
        if url is not None:
            settings = settings.model_copy(update={"database_url": url})
        async with serving(settings, frozenset({"http"})) as app:
            yield app


async def _seed(app: App, *, created_at: int) -> None:
    org = await app.accounts.resolve_organization(None)
    async with app.db.transaction() as s:
        hook = Webhook(
            organization_id=org.id,
            nickname="h",
            url="https://example.com/",
            topics=["file.created"],
            secret_encrypted="x",
        )
        stored = Event(organization_id=org.id, topic="file.created", actor_id="u", path="a.csv")
        s.add_all([hook, stored])
        await s.flush()
        for status, count in SEEDED.items():
            for _ in range(count):
                s.add(
                    Delivery(
                        organization_id=org.id,
                        webhook_id=hook.id,
                        event_id=stored.id,
                        topic="file.created",
                        status=status,
                        created_at=created_at,
                        next_attempt_at=None if status in ("succeeded", "failed") else created_at,
                    )
                )


async def _scrape(app: App) -> str:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}") as client:
        resp = await client.get("/metrics")
    assert resp.status_code == 200, resp.text
    return resp.text


def _samples(text: str, name: str) -> dict[str, str]:
    """The samples of one metric family: the text after the name (labels) -> the value."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            labels, _, value = line[len(name) :].rpartition(" ")
            found[labels] = value
    return found


async def test_metrics_count_unfinished_deliveries_from_the_store(http_node: App) -> None:
    created_at = now_ms() - 60_000
    await _seed(http_node, created_at=created_at)

    text = await _scrape(http_node)

    assert _samples(text, "sftphook_webhook_deliveries") == {
        '{status="held"}': "3",
        '{status="pending"}': "2",
        '{status="retrying"}': "1",
    }
    assert _samples(text, "sftphook_webhook_queue_depth") == {"": "3"}
    age = float(_samples(text, "sftphook_webhook_oldest_pending_age_seconds")[""])
    assert 60 <= age < 600
    # Finished deliveries are counted by the node that finishes them; this one sent none.
    assert _samples(text, "sftphook_webhook_deliveries_completed_total") == {
        '{status="failed"}': "0",
        '{status="succeeded"}': "0",
    }


async def test_metrics_scrape_searches_the_due_index_on_sqlite(settings: Settings) -> None:
    """Every statement a scrape sends about deliveries is a search of `ix_deliveries_due`
    bounded by the unfinished statuses, never a walk of the whole table."""
    async with serving(settings, frozenset({"http"})) as app:
        await _seed(app, created_at=now_ms())
        sent: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if "deliveries" in statement:
                sent.append((statement, parameters))

        sa_event.listen(app.db.engine.sync_engine, "before_cursor_execute", capture)
        try:
            await _scrape(app)
        finally:
            sa_event.remove(app.db.engine.sync_engine, "before_cursor_execute", capture)
        path = app.db.url.split(":///", 1)[1]

    assert sent
    with sqlite3.connect(path) as connection:
        for statement, parameters in sent:
            plan = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            details = [row[-1] for row in plan]
            assert any("ix_deliveries_due (status=?)" in d for d in details), (statement, details)
            assert not any(d.startswith("SCAN deliveries") for d in details), (statement, details)
