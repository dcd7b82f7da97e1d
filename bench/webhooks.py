"""Webhook delivery benchmark: throughput against a raw sender, SFTP-close-to-arrival latency,
and the peak memory of draining a large backlog.

Run with the project's virtualenv: `python bench/webhooks.py [--quick] [--postgres URL]`.

Every part runs in its own process, as in production: the sftphook server (`App.serve` with
the sftp and worker roles, logging at INFO to a file, like `sftphook serve`), one or more
receiver processes (aiohttp, answer 200 at once, count arrivals and time-stamp them), and the raw
baseline sender. The bench process itself only prepares the store, uploads with the asyncssh
client and reads the counters.

(a) throughput: N event deliveries are written while the webhook is paused (held), then the
    server resumes it; the rate is taken between 10% and 90% of the arrivals, i.e. with the
    pipeline full. The raw baseline sends the same number of requests, same body size and
    headers, same concurrency (the engine's `workers`), to the same receivers, with no store.
(b) latency: uploads at a fixed rate with the asyncssh client; the start of each measurement is
    the client's clock just before it sends the SFTP close (the close is what makes the server
    record `file.created`), the end is the receiver's clock when the request arrives. Both run
    on this machine, so they share one clock; the span covers the commit before the SFTP reply,
    the claim, signing and the HTTP request. The event's `CreatedAt` is taken by the server
    inside that span with millisecond resolution, too coarse for these numbers.
(c) backlog: a fresh server drains a backlog of deliveries; its peak RSS is VmHWM from
    /proc/<pid>/status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# BENCH_SRC=/path/to/other/src measures another tree (a before/after comparison).
sys.path.insert(0, os.environ.get("BENCH_SRC") or str(ROOT / "src"))

PASSWORD = "bench-password-1"
USERNAME = "bench"
# Set by --profile: py-spy records each server process into this directory.
PROFILE_DIR: Path | None = None
# Set by --profile-gil: only the samples of the thread holding the GIL (where the CPU goes).
PROFILE_GIL = False
NATIVE = ["--native"] if os.environ.get("BENCH_PYSPY_NATIVE") else []


# Receiver processes


def receiver_main(port: Any, counts: Any, slot: int, record: Any, arrivals: Any) -> None:
    """One receiver process: 200 at once; counts into `counts[slot]`; when `record` is set,
    puts (path, arrival ns) on `arrivals`."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time_ns()
        counts[slot] += 1
        if record.value:
            try:
                path = json.loads(body)["Data"]["Path"]
            except (ValueError, KeyError, TypeError):
                path = ""
            arrivals.put((path, arrived))
        return web.Response(status=200)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port.value, reuse_port=True)
        await site.start()
        if port.value == 0:
            sockets = site._server.sockets  # type: ignore[union-attr]
            port.value = sockets[0].getsockname()[1]
        await asyncio.Event().wait()

    asyncio.run(main())


class Receivers:
    def __init__(self, processes: int) -> None:
        ctx = mp.get_context("spawn")
        self.port = ctx.Value("i", 0)
        self.counts = ctx.Array("q", processes, lock=False)
        self.record = ctx.Value("b", 0)
        self.arrivals: Any = ctx.Queue()
        self.procs = []
        for slot in range(processes):
            proc = ctx.Process(
                target=receiver_main,
                args=(self.port, self.counts, slot, self.record, self.arrivals),
                daemon=True,
            )
            proc.start()
            self.procs.append(proc)
            if slot == 0:
                deadline = time.monotonic() + 20
                while self.port.value == 0:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the receiver did not start")
                    time.sleep(0.02)
        time.sleep(0.3)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port.value}/hook"

    def count(self) -> int:
        return int(sum(self.counts))

    def reset(self) -> None:
        for i in range(len(self.counts)):
            self.counts[i] = 0

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.join(5)


# Raw baseline


def raw_main(url: str, total: int, concurrency: int, body_size: int, out: Any) -> None:
    import aiohttp

    body = json.dumps({"Data": {"Path": "x" * max(0, body_size - 40)}}).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "raw",
        "X-Hub-Signature-256": "sha256=" + "0" * 64,
        "webhook-id": "0" * 36,
        "webhook-timestamp": "0",
        "webhook-signature": "v1," + "0" * 44,
    }

    async def main() -> float:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            remaining = total

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - t0

    cpu0 = time.process_time()
    out[0] = total / asyncio.run(main())
    out[1] = (time.process_time() - cpu0) * 1000 / total


def raw_rate(url: str, total: int, concurrency: int, body_size: int) -> tuple[float, float]:
    """Requests per second and CPU milliseconds per request of a bare aiohttp sender."""
    ctx = mp.get_context("spawn")
    out = ctx.Array("d", 2)
    proc = ctx.Process(target=raw_main, args=(url, total, concurrency, body_size, out))
    proc.start()
    proc.join()
    return float(out[0]), float(out[1])


# The server process


def server_main(
    data_dir: str, database_url: str | None, workers: int, conn: Any, log_path: str
) -> None:
    from sftphook import logs
    from sftphook.app import App

    logs.configure("INFO", filename=log_path)  # as `sftphook serve` does
    settings = _settings(data_dir, database_url, workers)

    async def main() -> None:
        app = App(settings)
        ready = asyncio.Event()
        task = asyncio.create_task(
            app.serve(frozenset({"sftp", "worker"}), ready=ready, install_signal_handlers=True)
        )
        await ready.wait()
        conn.send({"sftp_port": app.sftp.port})
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command[0] == "resume":
                _, org, webhook_id = command
                await app.webhooks.resume(org, webhook_id)
                conn.send("ok")
            elif command[0] == "stop":
                app.request_stop()
                await task
                conn.send("ok")
                return

    asyncio.run(main())


def _settings(data_dir: str, database_url: str | None, workers: int) -> Any:
    from sftphook.config import Settings

    extra: dict[str, Any] = {}
    if database_url:
        extra["database_url"] = database_url
    return Settings.load(
        data_dir=Path(data_dir),
        sftp={"host": "127.0.0.1", "port": 0},
        http={"host": "127.0.0.1", "port": 0},
        webhooks={
            "allow_http": True,
            "allowed_networks": ["127.0.0.0/8"],
            "workers": workers,
        },
        **extra,
    )


class Server:
    def __init__(self, data_dir: Path, database_url: str | None, workers: int) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.log = data_dir / "server.log"
        self.proc = ctx.Process(
            target=server_main,
            args=(str(data_dir), database_url, workers, child, str(self.log)),
            daemon=True,  # never outlives the bench, even when a scenario fails
        )
        self.proc.start()
        if not self.conn.poll(60):
            raise RuntimeError(f"the server did not start (see {self.log})")
        self.sftp_port = int(self.conn.recv()["sftp_port"])
        self.profiler: subprocess.Popen[bytes] | None = None
        if PROFILE_DIR is not None:
            # Collapsed stacks of the server, idle time included, for docs/performance.md.
            out = PROFILE_DIR / f"{data_dir.name}.folded"
            self.profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    *(["--gil"] if PROFILE_GIL else ["--idle"]),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "-o",
                    str(out),
                    "--pid",
                    str(self.proc.pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def resume(self, org: str, webhook_id: str) -> None:
        self.conn.send(("resume", org, webhook_id))
        self.conn.recv()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server so far (steady under machine load, unlike
        rates)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def loop_cpu_seconds(self) -> float:
        """The same for the main thread alone (the event loop; the rest is the writer thread
        and the I/O threads)."""
        pid = self.proc.pid
        fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)
            self.profiler.wait(30)
        if self.proc.is_alive():
            self.conn.send(("stop",))
            if self.conn.poll(60):
                self.conn.recv()
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()


# Store preparation (in the bench process, before and beside the server)


@dataclass
class Fixture:
    org: str
    webhook_id: str


async def prepare(data_dir: Path, database_url: str | None, url: str) -> Fixture:
    from sftphook.app import App

    app = App(_settings(str(data_dir), database_url, 64))
    await app.prepare()
    try:
        org = (await app.accounts.resolve_organization(None)).id
        await app.accounts.add_user(org, USERNAME, password=PASSWORD)
        view, _secret = await app.webhooks.create(
            org, nickname="bench", url=url, topics=["file.created"]
        )
        return Fixture(org=org, webhook_id=view.id)
    finally:
        await app.db.close()


async def insert_backlog(data_dir: Path, database_url: str | None, fx: Fixture, n: int) -> None:
    """Pause the webhook and write `n` events with their held deliveries, in large batches."""
    from sqlalchemy import insert

    from sftphook.app import App
    from sftphook.events.model import EventRecord, Topic
    from sftphook.store.models import Delivery, Event
    from sftphook.webhooks.fanout import delivery_row

    app = App(_settings(str(data_dir), database_url, 64))
    try:
        await app.webhooks.pause(fx.org, fx.webhook_id)
        batch = 5000
        for start in range(0, n, batch):
            events = [
                EventRecord(
                    organization_id=fx.org,
                    topic=Topic.FILE_CREATED,
                    actor_id=USERNAME,
                    path=f"backlog/{i:07d}.csv",
                    size=1234,
                    sha256="0" * 64,
                    protocol="sftp",
                    client_ip="127.0.0.1",
                    session_id="bench",
                )
                for i in range(start, min(n, start + batch))
            ]
            rows = [
                delivery_row(
                    organization_id=fx.org,
                    webhook_id=fx.webhook_id,
                    topic="file.created",
                    kind="event",
                    status="held",
                    event_id=e.id,
                )
                for e in events
            ]
            async with app.db.transaction() as s:
                await s.execute(insert(Event), [e.as_row() for e in events])
                await s.execute(insert(Delivery), rows)
    finally:
        await app.db.close()


def summarise_profile(folded: Path, top: int = 25) -> None:
    """Print the functions with the most samples (self and inclusive) of a py-spy raw file."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split("/")[-1] for f in stack.split(";")
        ]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    print(f"{folded.name}: {total} samples")
    for title, table in (("self", own), ("inclusive", inclusive)):
        print(f"  top {title}:")
        for frame, n in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {100 * n / total:5.1f}%  {frame}")


class Stage:
    """The server and store each scenario runs against: a fresh one per scenario, or (for
    `--quick`, and for PostgreSQL, where every scenario shares one database) one for all."""

    def __init__(
        self, base: Path, database_url: str | None, workers: int, url: str, shared: bool
    ) -> None:
        self.base = base
        self.database_url = database_url
        self.workers = workers
        self.url = url
        self.shared = shared
        self._current: tuple[Path, Fixture, Server] | None = None

    def enter(self, name: str) -> tuple[Path, Fixture, Server]:
        if self._current is None:
            data_dir = self.base / ("shared" if self.shared else name)
            fx = asyncio.run(prepare(data_dir, self.database_url, self.url))
            self._current = (data_dir, fx, Server(data_dir, self.database_url, self.workers))
        return self._current

    def leave(self) -> None:
        if not self.shared:
            self.close()

    def close(self) -> None:
        if self._current is not None:
            self._current[2].stop()
            self._current = None


# Scenarios


@dataclass
class Drain:
    rate: float
    seconds: float
    delivered: int
    peak_rss_mb: float
    cpu_ms_per_delivery: float
    # The event loop's share of it (the main thread's CPU).
    loop_cpu_ms_per_delivery: float


def drain(receivers: Receivers, stage: Stage, name: str, n: int) -> Drain:
    data_dir, fx, server = stage.enter(name)
    asyncio.run(insert_backlog(data_dir, stage.database_url, fx, n))
    try:
        receivers.reset()
        cpu0 = server.cpu_seconds()
        loop0 = server.loop_cpu_seconds()
        t0 = time.perf_counter()
        server.resume(fx.org, fx.webhook_id)
        marks: list[tuple[float, int]] = []
        deadline = t0 + max(120.0, n / 50)
        while True:
            count = receivers.count()
            now = time.perf_counter()
            marks.append((now, count))
            if count >= n or now > deadline:
                break
            time.sleep(0.05)
        total = now - t0
        lo = next(m for m in marks if m[1] >= n * 0.1)
        hi = next((m for m in marks if m[1] >= n * 0.9), marks[-1])
        rate = (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else count / total
        time.sleep(0.5)  # the last results are recorded after they arrive
        cpu = (server.cpu_seconds() - cpu0) * 1000 / max(1, count)
        loop_cpu = (server.loop_cpu_seconds() - loop0) * 1000 / max(1, count)
        return Drain(
            rate=rate,
            seconds=total,
            delivered=count,
            peak_rss_mb=server.peak_rss_mb(),
            cpu_ms_per_delivery=cpu,
            loop_cpu_ms_per_delivery=loop_cpu,
        )
    finally:
        stage.leave()


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    max_ms: float
    received: int
    sent: int


async def _upload_at_rate(
    port: int, rate: float, count: int, clients: int, between: Callable[[], None]
) -> dict[str, int]:
    """Upload `count` 1 KiB files at `rate` per second, round-robin over `clients` SFTP
    sessions (a session handles its requests one at a time, as OpenSSH's server does), after
    a warm-up of 20 uploads (connections to the receiver, caches) and `between()`."""

    started: dict[str, int] = {}
    payload = os.urandom(1024)
    async with contextlib.AsyncExitStack() as stack:
        sessions = await _sftp_sessions(stack, port, clients)
        await sessions[0].makedirs("warm", exist_ok=True)
        await sessions[0].makedirs("lat", exist_ok=True)

        async def one(name: str, i: int, times: dict[str, int]) -> None:
            f = await sessions[i % clients].open(name, "wb")
            await f.write(payload)
            times[name] = time.time_ns()
            await f.close()

        async def run(prefix: str, n: int, times: dict[str, int]) -> None:
            tasks = []
            t0 = time.perf_counter()
            for i in range(n):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(f"{prefix}/{i:06d}.bin", i, times)))
            await asyncio.gather(*tasks)

        await run("warm", 20, {})
        await asyncio.sleep(1.0)
        between()
        await run("lat", count, started)
    return started


def latency(receivers: Receivers, stage: Stage, rate: float, count: int, clients: int) -> Latency:
    _, _, server = stage.enter("latency")
    try:
        receivers.record.value = 1
        started = asyncio.run(
            _upload_at_rate(
                server.sftp_port, rate, count, clients, lambda: _drain_queue(receivers.arrivals)
            )
        )
        arrived: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while len(arrived) < count and time.monotonic() < deadline:
            try:
                path, at = receivers.arrivals.get(timeout=0.5)
            except Exception:
                continue
            if path in started:  # a late warm-up arrival is not one of ours
                arrived[path] = at
        receivers.record.value = 0
    finally:
        stage.leave()
    missing = sorted(set(started) - set(arrived))
    if missing:
        print(f"(b) no webhook arrived for {len(missing)} upload(s): {missing[:5]}", flush=True)
    spans = sorted((arrived[p] - t) / 1e6 for p, t in started.items() if p in arrived)
    if not spans:
        return Latency(float("nan"), float("nan"), float("nan"), 0, len(started))
    return Latency(
        p50_ms=statistics.median(spans),
        p99_ms=spans[min(len(spans) - 1, int(len(spans) * 0.99))],
        max_ms=spans[-1],
        received=len(spans),
        sent=len(started),
    )


@dataclass
class SmallFiles:
    seconds: float
    cpu_ms_per_upload: float


async def _sftp_sessions(stack: contextlib.AsyncExitStack, port: int, clients: int) -> list[Any]:
    """`clients` SFTP sessions of the bench user, each on its own connection, closed by `stack`."""
    import asyncssh

    sessions = []
    for _ in range(clients):
        conn = await stack.enter_async_context(
            asyncssh.connect(
                "127.0.0.1",
                port,
                username=USERNAME,
                password=PASSWORD,
                known_hosts=None,
                client_keys=None,
            )
        )
        sessions.append(await stack.enter_async_context(conn.start_sftp_client()))
    return sessions


async def _upload_many(port: int, count: int, clients: int, size: int) -> float:
    """Upload `count` files of `size` bytes as fast as `clients` sessions go; seconds taken."""

    payload = os.urandom(size)
    async with contextlib.AsyncExitStack() as stack:
        sessions = await _sftp_sessions(stack, port, clients)
        await sessions[0].makedirs("small", exist_ok=True)

        async def worker(k: int) -> None:
            for i in range(k, count, clients):
                async with sessions[k].open(f"small/{i:06d}.bin", "wb") as f:
                    await f.write(payload)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        return time.perf_counter() - t0


def small_files(receivers: Receivers, stage: Stage, count: int) -> SmallFiles:
    """(d) the SFTP front's small-file case with a webhook subscribed: what an event costs."""
    _, _, server = stage.enter("small")
    try:
        cpu0 = server.cpu_seconds()
        seconds = asyncio.run(_upload_many(server.sftp_port, count, 4, 4096))
        cpu = (server.cpu_seconds() - cpu0) * 1000 / count
    finally:
        stage.leave()
    return SmallFiles(seconds=seconds, cpu_ms_per_upload=cpu)


def _drain_queue(queue: Any) -> None:
    while True:
        try:
            queue.get(timeout=0.1)
        except Exception:
            return


# Report


def _row(name: str, value: str, target: str, ok: bool | None) -> list[str]:
    verdict = "-" if ok is None else ("pass" if ok else "FAIL")
    return [name, value, target, verdict]


def print_table(rows: Sequence[Sequence[str]]) -> None:
    header = ["measure", "result", "target", ""]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small numbers")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL URL instead of SQLite")
    parser.add_argument("--workers", type=int, default=64, help="send concurrency (default 64)")
    parser.add_argument("--receivers", type=int, default=1, help="receiver processes")
    parser.add_argument("--deliveries", type=int, help="deliveries for (a)")
    parser.add_argument("--backlog", type=int, help="deliveries for (c)")
    parser.add_argument("--uploads", type=int, help="uploads for (b)")
    parser.add_argument("--small", type=int, help="4 KiB uploads for (d)")
    parser.add_argument("--rate", type=float, default=100.0, help="uploads per second for (b)")
    parser.add_argument("--clients", type=int, help="SFTP sessions for (b) (default 10)")
    parser.add_argument(
        "--only", default="a,b,c,d", help="comma-separated scenarios to run (default a,b,c,d)"
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy record each server into DIR")
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: record only the thread holding the GIL (py-spy --gil)",
    )
    args = parser.parse_args(argv)
    global PROFILE_DIR, PROFILE_GIL
    PROFILE_GIL = args.profile_gil
    if args.profile:
        if not (Path(sys.executable).parent / "py-spy").exists():
            parser.error("--profile needs py-spy in this environment (pip install py-spy)")
        PROFILE_DIR = Path(args.profile).resolve()
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    n_a = args.deliveries or (300 if quick else 20_000)
    n_c = args.backlog or (500 if quick else 100_000)
    n_b = args.uploads or (30 if quick else 1_000)
    n_d = args.small or (100 if quick else 2_000)
    clients = args.clients or (2 if quick else 10)
    only = {s.strip() for s in args.only.split(",")}
    load = os.getloadavg()
    print(
        f"cpus={os.cpu_count()} load={load[0]:.2f},{load[1]:.2f},{load[2]:.2f} "
        f"store={'postgresql' if args.postgres else 'sqlite'} workers={args.workers} "
        f"receivers={args.receivers}",
        flush=True,
    )
    rows: list[list[str]] = []
    receivers = Receivers(args.receivers)
    try:
        with tempfile.TemporaryDirectory(prefix="sftphook-bench-") as tmp:
            stage = Stage(
                Path(tmp),
                args.postgres,
                args.workers,
                receivers.url,
                shared=quick or bool(args.postgres),
            )
            if "a" in only:
                raw, raw_cpu = raw_rate(
                    receivers.url, n_a if quick else max(n_a, 5000), args.workers, 700
                )
                print(
                    f"raw aiohttp sender: {raw:,.0f} requests/s, CPU {raw_cpu:.3f} ms per request",
                    flush=True,
                )
                got = drain(receivers, stage, "throughput", n_a)
                print(
                    f"(a) {got.delivered:,} deliveries in {got.seconds:.1f} s, "
                    f"{got.rate:,.0f}/s sustained; server CPU {got.cpu_ms_per_delivery:.3f} ms "
                    f"per delivery ({got.loop_cpu_ms_per_delivery:.3f} ms on the event loop)",
                    flush=True,
                )
                ratio = got.rate / raw if raw else 0.0
                rows.append(_row("raw aiohttp sender", f"{raw:,.0f}/s", "", None))
                rows.append(
                    _row(
                        "(a) deliveries/s, durable store",
                        f"{got.rate:,.0f}/s",
                        ">= 3,000/s",
                        got.rate >= 3000,
                    )
                )
                rows.append(_row("(a) ratio to raw", f"{ratio:.2f}", "~0.6", ratio >= 0.5))
                rows.append(
                    _row(
                        "(a) server CPU per delivery",
                        f"{got.cpu_ms_per_delivery:.3f} ms (raw {raw_cpu:.3f}), "
                        f"loop {got.loop_cpu_ms_per_delivery:.3f}",
                        "",
                        None,
                    )
                )
            if "b" in only:
                lat = latency(receivers, stage, args.rate, n_b, clients)
                print(
                    f"(b) {lat.received}/{lat.sent} arrived; p50 {lat.p50_ms:.1f} ms, "
                    f"p99 {lat.p99_ms:.1f} ms, max {lat.max_ms:.1f} ms",
                    flush=True,
                )
                rows.append(
                    _row(
                        f"(b) close->arrival p50 @{args.rate:g}/s",
                        f"{lat.p50_ms:.1f} ms",
                        "<= 5 ms",
                        lat.p50_ms <= 5,
                    )
                )
                rows.append(
                    _row(
                        f"(b) close->arrival p99 @{args.rate:g}/s",
                        f"{lat.p99_ms:.1f} ms",
                        "<= 30 ms",
                        lat.p99_ms <= 30 and lat.received == lat.sent,
                    )
                )
            if "c" in only:
                got = drain(receivers, stage, "backlog", n_c)
                print(
                    f"(c) backlog of {n_c:,}: {got.delivered:,} delivered in "
                    f"{got.seconds:.1f} s ({got.rate:,.0f}/s), peak RSS {got.peak_rss_mb:.0f} MB",
                    flush=True,
                )
                rows.append(
                    _row(
                        f"(c) backlog {n_c:,} drained",
                        f"{got.delivered:,} in {got.seconds:.1f} s",
                        "all",
                        got.delivered >= n_c,
                    )
                )
                rows.append(
                    _row(
                        "(c) server peak RSS (VmHWM)",
                        f"{got.peak_rss_mb:.0f} MB",
                        "< 250 MB",
                        got.peak_rss_mb < 250,
                    )
                )
            if "d" in only:
                small = small_files(receivers, stage, n_d)
                print(
                    f"(d) {n_d:,} x 4 KiB uploads over 4 sessions: {small.seconds:.1f} s "
                    f"({n_d / small.seconds:,.0f}/s), server CPU {small.cpu_ms_per_upload:.2f} ms "
                    "per upload (event and delivery included)",
                    flush=True,
                )
                rows.append(
                    _row(
                        "(d) 4 KiB uploads/s, 4 sessions",
                        f"{n_d / small.seconds:,.0f}/s",
                        "",
                        None,
                    )
                )
                rows.append(
                    _row(
                        "(d) server CPU per upload",
                        f"{small.cpu_ms_per_upload:.2f} ms",
                        "",
                        None,
                    )
                )
            stage.close()
    finally:
        receivers.close()
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
