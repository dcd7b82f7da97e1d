"""Scale-out benchmark: deliveries per second with one and with two worker nodes on one PostgreSQL.

Each round gets a fresh database. The worker nodes are `sftphook serve --roles worker`
processes; the receiver is a small aiohttp server in its own process that answers 200 at once.
The events are recorded in bulk through the event recorder while the webhook is paused, so their
deliveries wait as `held`; resuming the webhook releases them all in one transaction whose NOTIFY
wakes every node. The clock runs from the resume until the database counts every delivery as
succeeded. Then, when the storage benchmark is present, it runs too.

    PYTHONPATH=src python bench/scaleout.py [--events 4000] [--workers 64]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ADMIN_DSN = os.environ.get(
    "SFTPHOOK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# The receiver process


def serve_receiver(port: int) -> None:
    """Answer every POST with 200 and print the port once listening (run in its own process;
    several such processes share one port through SO_REUSEPORT)."""
    from aiohttp import web

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_port=True)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(bound, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def start_receivers(count: int) -> tuple[list[asyncio.subprocess.Process], int]:
    """`count` receiver processes on one port, so that the receiver is not what limits."""
    procs: list[asyncio.subprocess.Process] = []
    port = 0
    for _ in range(count):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--receiver", str(port), stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), 60))
        procs.append(proc)
    return procs, port


# The database and the nodes


@asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    import asyncpg

    admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
    name = f"sftphook_bench_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def node_env(data_dir: Path, database_url: str, key: str, workers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFTPHOOK_")}
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        SFTPHOOK_DATA_DIR=str(data_dir),
        SFTPHOOK_DATABASE_URL=database_url,
        SFTPHOOK_ENCRYPTION_KEY=key,
        SFTPHOOK_LOG_LEVEL="WARNING",
        SFTPHOOK_WEBHOOKS__ALLOW_HTTP="true",
        SFTPHOOK_WEBHOOKS__ALLOWED_NETWORKS='["127.0.0.0/8"]',
        SFTPHOOK_WEBHOOKS__WORKERS=str(workers),
        # Several worker nodes on one host: none binds the ops endpoints' port.
        SFTPHOOK_HTTP__OPS_ENDPOINTS="false",
    )
    return env


async def start_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sftphook",
        "serve",
        "--roles",
        "worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(120):
        while True:
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError("a worker node exited before it was ready")
            if b"is running" in line:
                break
    return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Round:
    nodes: int
    rate: float
    # CPU milliseconds the worker nodes spent per delivery, all nodes together.
    cpu_ms_per_delivery: float


async def one_round(nodes: int, events: int, workers: int, receiver_url: str) -> Round:
    """Deliveries per second with `nodes` worker nodes."""
    from sqlalchemy import func, select

    from sftphook.app import App
    from sftphook.config import Settings
    from sftphook.events import EventRecord, Topic
    from sftphook.store.models import Delivery

    key = base64.b64encode(secrets.token_bytes(32)).decode()
    base = Path(tempfile.mkdtemp(prefix="sftphook-scaleout-"))
    async with throwaway_database() as url:
        settings = Settings.load(
            data_dir=base / "admin",
            database_url=url,
            encryption_key=key,
            webhooks={"allow_http": True, "allowed_networks": ["127.0.0.0/8"]},
        )
        app = App(settings)
        await app.prepare()
        procs: list[asyncio.subprocess.Process] = []
        try:
            org = (await app.accounts.resolve_organization(None)).id
            hook, _ = await app.webhooks.create(
                org, nickname="bench", url=receiver_url, topics=["file.created"]
            )
            await app.webhooks.pause(org, hook.id)
            started = asyncio.Event()
            writer = asyncio.create_task(app.recorder.run(started))
            await started.wait()
            await asyncio.gather(
                *(
                    app.recorder.record(
                        EventRecord(
                            organization_id=org,
                            topic=Topic.FILE_CREATED,
                            actor_id="bench",
                            path=f"inbound/{i}.csv",
                            size=i,
                        )
                    )
                    for i in range(events)
                )
            )
            await app.recorder.close()
            await writer
            procs = list(
                await asyncio.gather(
                    *(
                        start_worker(node_env(base / f"node{i}", url, key, workers))
                        for i in range(nodes)
                    )
                )
            )
            await asyncio.sleep(1.0)  # let every node open its LISTEN connection
            cpu0 = sum(cpu_seconds(p.pid) for p in procs)
            t0 = time.perf_counter()
            await app.webhooks.resume(org, hook.id)
            while True:
                async with app.db.session() as s:
                    done = await s.scalar(
                        select(func.count())
                        .select_from(Delivery)
                        .where(Delivery.status == "succeeded")
                    )
                if done >= events:
                    break
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - t0
            cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
        finally:
            await asyncio.gather(*(stop(p) for p in procs))
            await app.db.close()
            shutil.rmtree(base, ignore_errors=True)
    return Round(nodes, events / elapsed, cpu * 1000 / events)


async def main(argv: list[str] | None = None) -> dict[int, Round]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="deliveries per round")
    parser.add_argument("--workers", type=int, default=64, help="send slots per node")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per node count (best kept)")
    parser.add_argument("--receivers", type=int, default=2, help="receiver processes")
    parser.add_argument(
        "--nodes", type=int, nargs="+", default=[1, 2], help="worker node counts to measure"
    )
    args = parser.parse_args(argv)
    receivers, port = await start_receivers(args.receivers)
    results: dict[int, Round] = {}
    try:
        url = f"http://127.0.0.1:{port}/hook"
        for nodes in args.nodes:
            rounds = [
                await one_round(nodes, args.events, args.workers, url) for _ in range(args.repeat)
            ]
            results[nodes] = max(rounds, key=lambda r: r.rate)
    finally:
        for receiver in receivers:
            receiver.terminate()
            await receiver.wait()
    print(
        f"\nScale-out: {args.events} deliveries, {args.workers} send slots per node, "
        f"{args.receivers} receiver processes"
    )
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print(f"{'worker nodes':>12} | {'deliveries/s':>12} | {'node CPU ms/delivery':>20}")
    print(f"{'-' * 12}-+-{'-' * 12}-+-{'-' * 20}")
    for r in results.values():
        print(f"{r.nodes:>12} | {r.rate:>12.0f} | {r.cpu_ms_per_delivery:>20.2f}")
    if 1 in results and 2 in results:
        ratio = results[2].rate / results[1].rate
        print(f"two nodes / one node: {ratio:.2f}x (target 1.6x)")
    return results


def run_storage_benchmark() -> None:
    try:
        from bench import storage
    except ImportError:
        print("\n(bench/storage.py is not here yet: the S3 vs local disk comparison is skipped)")
        return
    runner = getattr(storage, "run", None)
    if runner is None:
        print("\n(bench/storage.py has no run(): the storage comparison is skipped)")
        return
    print()
    result = runner()
    if asyncio.iscoroutine(result):
        asyncio.run(result)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--receiver"]:
        serve_receiver(int(sys.argv[2]))
    else:
        asyncio.run(main(sys.argv[1:]))
        run_storage_benchmark()
