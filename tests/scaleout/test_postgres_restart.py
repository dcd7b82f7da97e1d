"""A node rides out a PostgreSQL restart: events recorded meanwhile wait and commit, the
deliveries go out, and the notification channel comes back (on a private server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from sftphook.app import App
from tests.conftest import IN_CI, serving
from tests.support import private_postgres
from tests.support.private_postgres import PrivatePostgres
from tests.webhooks.conftest import file_event, org_id


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    if private_postgres.binaries() is None:
        if IN_CI:
            pytest.fail("PostgreSQL's initdb is not installed (the CI script installs it)")
        pytest.skip("PostgreSQL's initdb is not installed")
    server = private_postgres.create()
    try:
        yield server
    finally:
        private_postgres.destroy(server)


async def _until(predicate, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_node_survives_a_postgres_restart(settings, receiver, private_pg):
    settings = settings.model_copy(update={"database_url": private_pg.url})
    async with serving(settings, frozenset({"worker"})) as node:
        org = await org_id(node)
        await node.webhooks.create(org, nickname="r", url=receiver.url, topics=["file.created"])
        await node.recorder.record(file_event(org, path="before.csv"))
        await receiver.wait_for(1)
        await _until(lambda: node.engine.listening)

        # A restart: pooled connections die; the first use after it must not fail.
        await asyncio.to_thread(private_pg.restart)
        await node.recorder.record(file_event(org, path="after-restart.csv"))
        await receiver.wait_for(2)

        # Down for a while: a recording waits for the server instead of failing.
        await asyncio.to_thread(private_pg.stop)
        waiting = asyncio.create_task(node.recorder.record(file_event(org, path="while-down.csv")))
        await asyncio.sleep(1.5)
        assert not waiting.done()
        await asyncio.to_thread(private_pg.start)
        await asyncio.wait_for(waiting, 20)
        await receiver.wait_for(3, within=15)

        # The LISTEN connection is back: an event recorded by another process wakes this node
        # at once, although its timer would wait a minute.
        await _until(lambda: node.engine.listening)
        node.engine._safety = 60.0
        await asyncio.sleep(2.5)  # let the dispatcher's current wait end and the long one begin
        other = App(settings)
        try:
            t0 = time.monotonic()
            await other.recorder.record(file_event(org, path="from-another-node.csv"))
            got = await receiver.wait_for(4, within=5)
            assert time.monotonic() - t0 < 2
        finally:
            await other.db.close()
    paths = sorted(r.json()["Data"]["Path"] for r in got)
    assert paths == ["after-restart.csv", "before.csv", "from-another-node.csv", "while-down.csv"]
