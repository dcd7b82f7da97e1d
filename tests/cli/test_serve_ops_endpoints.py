"""A node without the `http` role (`sftphook serve --roles sftp`, `--roles worker`) serves
`/metrics`, `/healthz` and `/readyz` alone on `http.host`:`http.port`, so that every node of a
split deployment can be scraped and checked; `http.ops_endpoints = false` binds nothing. Real
processes, real HTTP and SFTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import httpx
import pytest
from aiohttp import web

from sftphook.app import App
from sftphook.config import Settings
from tests.cli.conftest import Cli, command, serve_on_a_taken_port
from tests.sftp.conftest import PASSWORD, host_keys_cache, reuse_host_keys  # noqa: F401
from tests.webhooks.conftest import Receiver, file_event

# Paths of the dashboard and the API: none of them is served without the `http` role.
NOT_SERVED = ["/", "/login", "/api/v1/users", "/api/v1/openapi.json", "/api/v1/docs", "/static/x"]


@dataclass
class Node:
    proc: asyncio.subprocess.Process
    banner: list[str]
    sftp_port: int | None = None
    metrics_url: str | None = None
    stderr: list[bytes] = field(default_factory=list)

    @property
    def base(self) -> str:
        assert self.metrics_url is not None, self.banner
        return self.metrics_url.removesuffix("/metrics")


@asynccontextmanager
async def node(env: dict[str, str], roles: str) -> AsyncIterator[Node]:
    """`sftphook serve --roles ROLES` until the block ends; it must then stop cleanly."""
    proc = await asyncio.create_subprocess_exec(
        *command("serve", "--roles", roles),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    started = Node(proc, [])
    drain = asyncio.create_task(_collect(proc.stderr, started.stderr))
    try:
        async with asyncio.timeout(60):
            while not any("is running" in line for line in started.banner):
                raw = await proc.stdout.readline()
                assert raw, b"".join(started.stderr).decode(errors="replace")
                started.banner.append(raw.decode().rstrip())
        # The banner is one write: the rest of it is there already.
        while True:
            try:
                raw = await asyncio.wait_for(proc.stdout.readline(), 0.5)
            except TimeoutError:
                break
            if not raw:
                break
            started.banner.append(raw.decode().rstrip())
        for line in started.banner:
            if m := re.match(r"\s+SFTP\s+127\.0\.0\.1:(\d+)", line):
                started.sftp_port = int(m.group(1))
            if m := re.match(r"\s+metrics\s+(http://127\.0\.0\.1:\d+/metrics)\s", line):
                started.metrics_url = m.group(1)
        yield started
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        await drain
    err = b"".join(started.stderr).decode(errors="replace")
    assert code == 0, err
    assert "Traceback" not in err


async def _collect(stream: asyncio.StreamReader, into: list[bytes]) -> None:
    while chunk := await stream.read(65536):
        into.append(chunk)


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (Linux: its sockets' inodes in /proc/net/tcp*)."""
    fds = Path(f"/proc/{pid}/fd")
    inodes = set()
    for fd in fds.iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if m := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(m.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cells = row.split()
            # local address, state 0A (LISTEN), inode
            if cells[3] == "0A" and cells[9] in inodes:
                ports.add(int(cells[1].rsplit(":", 1)[1], 16))
    return ports


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample in a Prometheus text exposition."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


async def scrape(client: httpx.AsyncClient, at: Node) -> dict[str, float]:
    answer = await client.get(f"{at.base}/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(answer.text)


async def check_health_and_nothing_else(client: httpx.AsyncClient, at: Node, roles: str) -> None:
    assert (await client.get(f"{at.base}/healthz")).json() == {"status": "ok"}
    ready = await client.get(f"{at.base}/readyz")
    assert ready.status_code == 200, ready.text
    # An `sftp` node checks its file store too.
    store = {"storage": "ok"} if roles == "sftp" else {}
    assert ready.json() == {"status": "ok", "database": "ok", roles: "ok", **store}
    for path in NOT_SERVED:
        answer = await client.get(f"{at.base}{path}")
        assert answer.status_code == 404, (path, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json"), path


async def a_webhook_and_an_event(cli: Cli, settings: Settings, receiver: Receiver) -> None:
    """A webhook to `receiver` (added with the CLI) and one event for it, recorded elsewhere (as
    by an SFTP node) before the worker node starts."""
    added = await asyncio.to_thread(
        cli, "webhooks", "add", "--url", receiver.url, "-n", "ops", "-t", "file.created"
    )
    assert added.returncode == 0, added.stderr
    setup = App(settings)
    try:
        await setup.prepare()
        org = await setup.accounts.resolve_organization(None)
        await setup.recorder.record(
            file_event(org.id, "inbound/report.csv", actor_id="partner", size=7)
        )
    finally:
        await setup.db.close()


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    """The nodes' environment, which `cli` commands share: every port free, plain HTTP to the
    receivers on this machine allowed."""
    cli_env.update(
        {
            "SFTPHOOK_SFTP__HOST": "127.0.0.1",
            "SFTPHOOK_SFTP__PORT": "0",
            "SFTPHOOK_HTTP__HOST": "127.0.0.1",
            "SFTPHOOK_HTTP__PORT": "0",
            "SFTPHOOK_WEBHOOKS__ALLOW_HTTP": "true",
            "SFTPHOOK_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        }
    )
    return cli_env


async def test_an_sftp_node_serves_its_connection_and_session_gauges_on_metrics(
    env: dict[str, str],
    settings: Settings,
    host_keys_cache: Path,  # noqa: F811
) -> None:
    reuse_host_keys(settings, host_keys_cache)
    setup = App(settings)
    try:
        await setup.prepare()
        org = await setup.accounts.resolve_organization(None)
        await setup.accounts.add_user(org.id, "alice", password=PASSWORD)
    finally:
        await setup.db.close()

    async with node(env, "sftp") as sftp_node, httpx.AsyncClient() as client:
        assert sftp_node.sftp_port is not None, sftp_node.banner
        assert not any(line.lstrip().startswith("HTTP") for line in sftp_node.banner)
        assert listening_ports(sftp_node.proc.pid) == {
            sftp_node.sftp_port,
            int(sftp_node.base.rsplit(":", 1)[1]),
        }
        before = await scrape(client, sftp_node)
        assert before["sftphook_sftp_connections"] == 0
        assert before["sftphook_sftp_sessions"] == 0
        # The store's figures: this node has the database, as every node does.
        assert before["sftphook_webhook_queue_depth"] == 0
        async with (
            asyncssh.connect(
                "127.0.0.1",
                sftp_node.sftp_port,
                username="alice",
                password=PASSWORD,
                known_hosts=None,
                client_keys=None,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            await sftp.listdir(".")
            seen = await scrape(client, sftp_node)
        assert seen["sftphook_sftp_connections"] == 1
        assert seen["sftphook_sftp_connections_logging_in"] == 0
        assert seen["sftphook_sftp_sessions"] == 1
        await check_health_and_nothing_else(client, sftp_node, "sftp")


async def test_a_worker_node_serves_its_attempts_and_completions_on_metrics(
    cli: Cli, env: dict[str, str], settings: Settings
) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        await a_webhook_and_an_event(cli, settings, receiver)

        async with node(env, "worker") as worker, httpx.AsyncClient() as client:
            assert listening_ports(worker.proc.pid) == {int(worker.base.rsplit(":", 1)[1])}
            await receiver.wait_for(1, within=20)
            attempts = 'sftphook_webhook_attempts_total{outcome="succeeded",topic="file.created"}'
            completed = 'sftphook_webhook_deliveries_completed_total{status="succeeded"}'
            # The answer is recorded just after the receiver has it.
            for _ in range(100):
                seen = await scrape(client, worker)
                if seen.get(completed) == 1:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"no completed delivery on the worker's /metrics: {seen}")
            assert seen[attempts] == 1
            assert seen["sftphook_webhook_attempt_duration_seconds_count"] == 1
            assert seen["sftphook_webhook_queue_depth"] == 0
            assert not [name for name in seen if name.startswith("sftphook_sftp_")]
            await check_health_and_nothing_else(client, worker, "worker")
    finally:
        await receiver.stop()


@pytest.mark.parametrize("roles", ["sftp", "worker"])
async def test_with_ops_endpoints_off_a_node_without_the_http_role_binds_no_http_port(
    env: dict[str, str], roles: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env["SFTPHOOK_HTTP__PORT"] = str(port)
    env["SFTPHOOK_HTTP__OPS_ENDPOINTS"] = "false"
    async with node(env, roles) as started:
        assert started.metrics_url is None, started.banner
        expected = {started.sftp_port} if roles == "sftp" else set()
        assert listening_ports(started.proc.pid) == expected
    assert b"metrics and health" not in b"".join(started.stderr)


@pytest.mark.parametrize("roles", ["sftp", "worker", "sftp,worker"])
def test_a_taken_port_on_a_node_without_the_http_role_is_one_error_line(
    cli: Cli, cli_env: dict[str, str], roles: str
) -> None:
    port, logged, line = serve_on_a_taken_port(
        cli, cli_env, "SFTPHOOK_HTTP__PORT", "--roles", roles
    )
    assert line.startswith(
        f"error: the metrics and health endpoints cannot listen on 127.0.0.1:{port}: "
    ), line
    assert "in use" in line and "SFTPHOOK_HTTP__PORT" in line, line
    assert "SFTPHOOK_HTTP__OPS_ENDPOINTS=false" in line, line
    # Before it, the log of the start: no role listened.
    assert not [entry for entry in logged if "SFTP on" in entry], logged


async def test_a_draining_worker_node_answers_its_ops_endpoints_until_it_exits(
    cli: Cli, env: dict[str, str], settings: Settings
) -> None:
    """SIGTERM while a delivery is in flight: the node drains it before exiting, and meanwhile
    `/readyz` says it is not claiming (503) and `/metrics` still answers, instead of the port
    going dark at the start of the drain."""
    receiver = Receiver()
    answer = asyncio.Event()

    async def slow(request: object, received: object) -> web.StreamResponse:
        await answer.wait()
        return web.Response(text="ok")

    receiver.behaviour = slow
    await receiver.start()
    try:
        await a_webhook_and_an_event(cli, settings, receiver)

        env["SFTPHOOK_WEBHOOKS__TIMEOUT"] = "20"
        env["SFTPHOOK_WEBHOOKS__LEASE_SECONDS"] = "60"
        async with node(env, "worker") as worker, httpx.AsyncClient() as client:
            await receiver.wait_for(1, within=20)  # the delivery is in flight
            worker.proc.send_signal(signal.SIGTERM)
            for _ in range(100):
                ready = await client.get(f"{worker.base}/readyz")
                if ready.status_code == 503:
                    break
                await asyncio.sleep(0.05)
            assert ready.status_code == 503, ready.text
            assert ready.json()["worker"] == "not claiming"
            await asyncio.sleep(0.5)  # the other roles' closers have run by now
            assert worker.proc.returncode is None  # still draining
            assert (await client.get(f"{worker.base}/readyz")).status_code == 503
            assert (await client.get(f"{worker.base}/metrics")).status_code == 200
            answer.set()
            await asyncio.wait_for(worker.proc.wait(), 30)
    finally:
        answer.set()
        await receiver.stop()
