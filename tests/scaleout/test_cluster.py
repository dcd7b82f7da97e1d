"""Two and three `sftphook serve` processes on one PostgreSQL database and one storage directory,
delivering to a real receiver: exactly once per webhook across nodes, nothing lost when a node is
killed, migrations while a node serves."""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from sftphook.receiver import verify
from sftphook.store.database import alembic_config
from sftphook.store.models import Delivery
from tests.scaleout.cluster import Cluster, prepare
from tests.webhooks.conftest import Receiver, file_event

pytestmark = pytest.mark.e2e

# A longer run: SFTPHOOK_SCALEOUT_SCALE=10 multiplies the bursts (and the time) by ten.
SCALE = max(1, int(os.environ.get("SFTPHOOK_SCALEOUT_SCALE", "1")))


@pytest.fixture
async def cluster(tmp_path: Path, postgres_url: str) -> AsyncIterator[Cluster]:
    running = Cluster(tmp_path, postgres_url, lease_seconds=2, workers=8)
    try:
        yield running
    finally:
        await running.stop_all()


async def _until(predicate, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.1)


async def _statuses(app) -> dict[str, int]:
    async with app.db.session() as s:
        rows = await s.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        return dict(rows.all())


async def _upload(node, names: list[str], payload: bytes) -> None:
    async with await node.sftp() as conn, conn.start_sftp_client() as sftp:
        for name in names:
            async with sftp.open(name, "wb") as fh:
                await fh.write(payload)


async def test_nodes_of_any_roles_deliver_each_event_once_per_webhook(cluster, receiver):
    # Three nodes start at once on an empty database: one migrates, the others wait for it.
    a, b, c = await asyncio.gather(
        cluster.start("a", "sftp,http,worker"),
        cluster.start("b", "worker"),
        cluster.start("c", "sftp,http"),
    )
    base = f"http://127.0.0.1:{receiver.port}"
    app, _, secrets = await prepare(cluster, [f"{base}/one", f"{base}/two"])
    try:
        payload = b"x" * 1000
        half = 20 * SCALE
        names_a = [f"via-a-{i}.csv" for i in range(2 * half)]
        names_c = [f"via-c-{i}.csv" for i in range(2 * half)]
        await asyncio.gather(
            _upload(a, names_a[:half], payload),
            _upload(a, names_a[half:], payload),
            _upload(c, names_c[:half], payload),
            _upload(c, names_c[half:], payload),
        )
        expected = 2 * (len(names_a) + len(names_c))
        await receiver.wait_for(expected, within=60 * SCALE)
        await asyncio.sleep(1.5)  # room for a second copy, if any node were to send one

        per_webhook: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        for got, secret in ((r, secrets[0 if r.path == "/one" else 1]) for r in receiver.requests):
            verify(secret, got.body, got.headers)  # the nodes decrypted the secret: one key
            per_webhook[got.path][got.headers["webhook-id"]] += 1
            assert got.json()["Topic"] == "file.created"
        assert len(receiver.requests) == expected
        for path in ("/one", "/two"):
            assert len(per_webhook[path]) == expected // 2
            assert max(per_webhook[path].values()) == 1
            paths = sorted(r.json()["Data"]["Path"] for r in receiver.requests if r.path == path)
            assert paths == sorted(names_a + names_c)
        assert await _statuses(app) == {"succeeded": expected}

        # The two worker nodes shared the work; the node without the worker role sent nothing;
        # no delivery was attempted by two nodes.
        attempts = {n.name: [d for d, _ in n.attempts()] for n in (a, b, c)}
        assert attempts["a"] and attempts["b"], {k: len(v) for k, v in attempts.items()}
        assert attempts["c"] == []
        assert not set(attempts["a"]) & set(attempts["b"])

        # A ping asked of node C (no worker role) through its API is sent by a worker node.
        org = (await app.accounts.resolve_organization(None)).id
        _, token = await app.accounts.create_token(org, "cluster")
        hooks = await app.webhooks.list_webhooks(org)
        one = next(h for h in hooks if h.url.endswith("/one"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{c.http_port}") as client:
            answer = await client.post(
                f"/api/v1/webhooks/{one.id}/ping", headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code < 300, answer.text
        (*_, ping) = await receiver.wait_for(expected + 1, within=15)
        assert ping.json()["Topic"] == "webhook.ping"
        assert c.attempts() == []

        # One storage: a file uploaded through node A reads back through node C.
        async with await c.sftp() as conn, conn.start_sftp_client() as sftp:
            async with sftp.open(names_a[0], "rb") as fh:
                assert await fh.read() == payload
            assert set(names_a) <= set(await sftp.listdir("."))
    finally:
        await app.db.close()


async def test_a_node_killed_mid_delivery_loses_nothing(cluster):
    answered: set[str] = set()

    async def slow(request: web.Request, received) -> web.StreamResponse:
        await asyncio.sleep(0.2)
        answered.add(received.headers["webhook-id"])
        return web.Response(text="ok")

    receiver = Receiver()
    receiver.behaviour = slow
    await receiver.start()
    try:
        a, b = await asyncio.gather(cluster.start("a", "worker"), cluster.start("b", "worker"))
        app, org, _ = await prepare(cluster, [receiver.url])
        started = asyncio.Event()
        writer = asyncio.create_task(app.recorder.run(started))
        await started.wait()
        total = 150 * SCALE
        await asyncio.gather(
            *(app.recorder.record(file_event(org, path=f"k/{i}.csv")) for i in range(total))
        )
        await receiver.wait_for(30, within=30)
        await a.kill()
        arrived_before_kill = {r.headers["webhook-id"] for r in receiver.requests}
        async with app.db.session() as s:
            recorded_at_kill = set(
                (await s.scalars(select(Delivery.id).where(Delivery.status == "succeeded"))).all()
            )

        async def all_succeeded() -> bool:
            return await _statuses(app) == {"succeeded": total}

        await _until(all_succeeded, 60 * SCALE, "every delivery succeeded after the kill")
        await asyncio.sleep(0.5)
        counts = collections.Counter(r.headers["webhook-id"] for r in receiver.requests)
        async with app.db.session() as s:
            every = set((await s.scalars(select(Delivery.id))).all())
        assert set(counts) == every  # none lost
        # At-least-once: only a delivery whose request node A had sent, and whose result it had
        # not yet recorded when it was killed, may arrive twice (node B sends it again when A's
        # lease runs out). Everything else arrives exactly once.
        twice = {d for d, n in counts.items() if n > 1}
        assert twice <= arrived_before_kill - recorded_at_kill
        assert max(counts.values()) <= 2
        # Node A had requests on the wire, or answers not yet written, when it died (each
        # request takes 0.2 s): node B sent those again once A's leases ran out.
        assert twice, "node A had no delivery in flight at the kill: the test proved nothing"
        assert twice <= {d for d, _ in b.attempts()}
        assert not twice & {d for d, _ in a.attempts()}  # A never wrote down a result for them
        await app.recorder.close()
        await writer
        await app.db.close()
    finally:
        await receiver.stop()


async def test_db_upgrade_runs_while_another_node_serves(cluster, receiver):
    node = await cluster.start("a", "sftp,http,worker")
    app, _, _ = await prepare(cluster, [receiver.url])
    try:
        # Take the schema back to the first migration, as before an upgrade, while the node
        # serves (what the later ones add is not used by uploads and deliveries).
        await asyncio.to_thread(command.downgrade, alembic_config(cluster.database_url), "0001")
        names = [f"during-upgrade-{i}.csv" for i in range(30)]
        uploading = asyncio.create_task(_upload(node, names, b"data"))
        status, output = await cluster.command("db", "upgrade")
        await uploading
        assert status == 0, output
        head = ScriptDirectory.from_config(alembic_config(cluster.database_url)).get_current_head()
        assert "upgrading from 0001:" in output
        assert "\n  0002: " in output
        assert f"database upgraded to revision {head}" in output
        async with app.db.session() as s:
            assert await s.scalar(text("SELECT version_num FROM alembic_version")) == head
            index = await s.scalar(
                text("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_deliveries_webhook_head'")
            )
            assert index == 1
        got = await receiver.wait_for(len(names), within=30)
        assert sorted(r.json()["Data"]["Path"] for r in got) == sorted(names)
        assert await node.stop() == 0
    finally:
        await app.db.close()
