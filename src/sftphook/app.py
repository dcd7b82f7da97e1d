"""The composition root: builds every part of sftphook, wires them, and owns their lifecycles.

Only this module knows every part. `serve()` runs the roles in one TaskGroup and shuts down in
order: stop SFTP intake (open transfers are closed), flush the event recorder, stop the HTTP
server, drain the delivery workers with a deadline, and close the database last. A node without
the `http` role serves the ops endpoints alone (`/metrics`, `/healthz`, `/readyz`) on the HTTP
address, unless `http.ops_endpoints` is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

import uvicorn

from sftphook.accounts import AccountService
from sftphook.audit import AuditLog, SecurityRecorder
from sftphook.config import Settings
from sftphook.errors import CannotListen, cannot_listen
from sftphook.events import EventRecorder
from sftphook.notices import OwnerNotices
from sftphook.retention import Pruner
from sftphook.store import Database
from sftphook.store.database import MigrationStep
from sftphook.webhooks.crypto import open_box
from sftphook.webhooks.engine import DeliveryEngine
from sftphook.webhooks.fanout import FanOut
from sftphook.webhooks.metrics import Metrics
from sftphook.webhooks.service import WebhookService

if TYPE_CHECKING:
    from sftphook.sftp.server import HostKeys, SFTPFront
    from sftphook.storage import StorageBackend
    from sftphook.storage.readiness import StorageReadiness

log = logging.getLogger(__name__)

ROLES = frozenset({"sftp", "http", "worker"})
# What a node without the `http` role serves on the HTTP address (named in its errors).
OPS_ENDPOINTS = "the metrics and health endpoints"
# How long shutdown waits for queued owner notices (SMTP retries included).
NOTICE_DRAIN_SECONDS = 15


class App:
    """Every long-lived part of one sftphook node."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.resolved_database_url)
        self.recorder = EventRecorder(self.db)
        self.accounts = AccountService(self.db)
        key = settings.encryption_key.get_secret_value() if settings.encryption_key else None
        self.secret_box = open_box(key, settings.encryption_key_file)
        self.metrics = Metrics()
        self.engine = DeliveryEngine(
            self.db,
            settings.webhooks,
            self.secret_box,
            self.metrics,
            smtp=settings.smtp,
        )
        self.webhooks = WebhookService(
            self.db, settings.webhooks, self.secret_box, notify=self.engine.wake, smtp=settings.smtp
        )
        self.audit = AuditLog(self.db)
        self.security = SecurityRecorder(self.db)
        self.notices = OwnerNotices(self.db, settings.smtp, public_url=settings.http.public_url)
        self.engine.paused_hook = self.notices.webhook_auto_paused
        self.webhooks.on_secret_rotated = self.notices.secret_rotated
        fanout = FanOut(self.engine.wake)
        self.recorder.add_sync_listener(fanout.listener)
        self.recorder.add_commit_hook(fanout.committed)
        self.recorder.add_commit_hook(
            lambda events: self.metrics.count_events(e.topic for e in events)
        )
        # The roles this node runs, once `serve()` has been called.
        self.roles: frozenset[str] = frozenset()
        # The SFTP front, once the `sftp` role has started on this node.
        self.sftp: SFTPFront | None = None
        # Where its files live, once the `sftp` role has opened it, and what `/readyz` asks.
        self.storage: StorageBackend | None = None
        self.storage_readiness: StorageReadiness | None = None
        # What listens on `http.host`:`http.port`, once started: the dashboard and API (the
        # `http` role), or the ops endpoints alone.
        self.http_server: uvicorn.Server | None = None
        self._sftp_host_keys: HostKeys | None = None
        self._stop = asyncio.Event()
        self._closers: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []

    async def prepare(self, on_migration: MigrationStep | None = None) -> None:
        """First-start work, safe to repeat: data directory, schema, default organization."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await self.db.upgrade(on_migration)
        await self.accounts.ensure_default_organization()

    def request_stop(self) -> None:
        self._stop.set()

    async def serve(
        self,
        roles: frozenset[str] = ROLES,
        *,
        ready: asyncio.Event | None = None,
        install_signal_handlers: bool = True,
    ) -> None:
        """Run until SIGINT/SIGTERM or `request_stop()`; `ready` is set once every role listens."""
        unknown = roles - ROLES
        if unknown:
            raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
        self.roles = roles
        await self.prepare()
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            if "sftp" in roles:
                # Before any role listens: settings the host keys in the database refuse
                # (`sftp.signature_algorithms`) stop the node here, not half-way through.
                await self._load_sftp_host_keys()
            try:
                async with asyncio.TaskGroup() as tasks:
                    started = asyncio.Event()
                    recorder_task = tasks.create_task(self.recorder.run(started), name="recorder")
                    await started.wait()
                    for start in self._starters(roles):
                        try:
                            await start(tasks)
                        except BaseException:
                            # The roles that started before this one stop with it, as at a
                            # shutdown; the recorder flushes what they recorded.
                            await self._shutdown()
                            await _bounded("recorder", _awaited(recorder_task))
                            raise
                    await self._run_started(roles, tasks, ready)
                    await recorder_task
            except* CannotListen as failed:
                # A role's own error, raised where it started: itself, not a group of one.
                raise failed.exceptions[0] from None
        finally:
            if install_signal_handlers:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            await self.db.close()

    async def _run_started(
        self, roles: frozenset[str], tasks: asyncio.TaskGroup, ready: asyncio.Event | None
    ) -> None:
        """Every role listens: run until asked to stop, then shut down."""
        if "worker" in roles:
            self._start_pruner(tasks)
        self._start_audit(tasks)
        if ready is not None:
            ready.set()
        await self._stop.wait()
        log.info("shutting down")
        await self._shutdown()

    def _starters(
        self, roles: frozenset[str]
    ) -> list[Callable[[asyncio.TaskGroup], Coroutine[Any, Any, None]]]:
        """What `serve()` starts, in order: the roles, after the ops endpoints of a node without
        the `http` role (its HTTP port is taken first, as the `http` role's is)."""
        starters = [getattr(self, f"_start_{role}") for role in sorted(roles)]
        if "http" not in roles and self.settings.http.ops_endpoints:
            starters.insert(0, self._start_ops)
        return starters

    async def _load_sftp_host_keys(self) -> None:
        from sftphook.sftp.server import HostKeys

        self._sftp_host_keys = await HostKeys.load(self.settings, self.db, self.secret_box)

    async def _start_sftp(self, tasks: asyncio.TaskGroup) -> None:
        from sftphook.sftp.server import SFTPFront
        from sftphook.storage import open_backend
        from sftphook.storage.readiness import StorageReadiness

        # One backend (one S3 client and its connection pool) for every session of this node.
        storage = await asyncio.to_thread(open_backend, self.settings)
        front = SFTPFront(
            self.settings,
            self.db,
            self.accounts,
            self.recorder,
            storage,
            self.secret_box,
            security=self.security,
            host_keys=self._sftp_host_keys,
        )
        try:
            await front.start()
        except BaseException:
            storage.close()
            raise
        self.sftp = front
        self.storage = storage
        self.storage_readiness = StorageReadiness(storage)

        async def stop_sftp() -> None:
            try:
                await front.close()
            finally:
                storage.close()

        self._closers.append(("sftp", stop_sftp))

    async def _start_http(self, tasks: asyncio.TaskGroup) -> None:
        from sftphook.api.app import create_app

        await self._serve_http(create_app(self), "the dashboard and API", tasks)
        log.info("dashboard and API on http://%s:%d", self.settings.http.host, self.http_port)
        await self._print_first_admin_hint()

    async def _start_ops(self, tasks: asyncio.TaskGroup) -> None:
        # Its own module: a node without the `http` role loads neither the dashboard nor the API.
        from sftphook.api.ops import create_ops_app

        await self._serve_http(
            create_ops_app(self), OPS_ENDPOINTS, tasks, switch="ops_endpoints", name="ops"
        )
        log.info(
            "metrics and health on http://%s:%d (/metrics, /healthz, /readyz)",
            self.settings.http.host,
            self.http_port,
        )

    async def _serve_http(
        self,
        asgi: Any,
        what: str,
        tasks: asyncio.TaskGroup,
        *,
        switch: str | None = None,
        name: str = "http",
    ) -> None:
        """Serve `asgi` on `http.host`:`http.port` until shutdown; `what` names it, and
        `switch` the setting that turns it off, in the error of a port that cannot be listened
        on; `name` is its closer's (`_shutdown`)."""
        config = uvicorn.Config(
            asgi,
            host=self.settings.http.host,
            port=self.settings.http.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips=self.settings.http.trusted_proxies,
        )
        server = _QuietUvicorn(config)
        # Bound here rather than by uvicorn, which logs a failure and exits the process.
        sock = _listening_socket(self.settings.http.host, self.settings.http.port, what, switch)
        tasks.create_task(server.serve(sockets=[sock]), name="http")
        while not server.started:
            if server.should_exit:
                raise RuntimeError(
                    f"HTTP could not listen on {self.settings.http.host}:{self.settings.http.port}"
                )
            await asyncio.sleep(0.01)
        self.http_server = server

        async def stop_http() -> None:
            server.should_exit = True

        self._closers.append((name, stop_http))

    async def _print_first_admin_hint(self) -> None:
        from sftphook.accounts.admins import AdminService

        if await AdminService(self.db).count() == 0:
            log.warning(
                "no dashboard account yet; create the first one with: "
                "sftphook admins add admin --password-stdin"
            )

    async def _start_worker(self, tasks: asyncio.TaskGroup) -> None:
        started = asyncio.Event()
        tasks.create_task(self.engine.run(started), name="webhook-engine")
        await started.wait()

        async def stop_engine() -> None:
            await self.engine.stop(deadline=self.settings.webhooks.timeout + 1)

        self._closers.append(("worker", stop_engine))

    def _start_pruner(self, tasks: asyncio.TaskGroup) -> None:
        pruner = Pruner(self.db, self.settings.retention)
        tasks.create_task(pruner.run(), name="pruner")
        self._closers.append(("pruner", pruner.close))

    def _start_audit(self, tasks: asyncio.TaskGroup) -> None:
        # Last in `_closers`: failed logins are flushed and notices drained after every part
        # that makes them has stopped.
        tasks.create_task(self.security.run(), name="security-log")
        notices = tasks.create_task(self.notices.run(), name="owner-notices")

        async def drain_notices() -> None:
            await self.notices.close()
            try:
                async with asyncio.timeout(NOTICE_DRAIN_SECONDS):
                    await asyncio.shield(notices)
            except TimeoutError:
                log.warning("owner notices still unsent after %d s: given up", NOTICE_DRAIN_SECONDS)
                notices.cancel()

        self._closers.append(("security-log", self.security.close))
        self._closers.append(("owner-notices", drain_notices))

    @property
    def http_port(self) -> int:
        server = self.http_server
        if server is None or not server.servers:
            return self.settings.http.port
        return int(server.servers[0].sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        # SFTP first (no new events), then the recorder flushes, then the rest; the ops
        # endpoints last, so that a draining node still answers `/readyz` (503) and `/metrics`.
        for name, close in self._closers:
            if name == "sftp":
                await _bounded(name, close())
        await self.recorder.close()
        for name, close in self._closers:
            if name not in ("sftp", "ops"):
                await _bounded(name, close())
        for name, close in self._closers:
            if name == "ops":
                await _bounded(name, close())


async def _bounded(name: str, closing: Coroutine[Any, Any, None], deadline: float = 30.0) -> None:
    try:
        async with asyncio.timeout(deadline):
            await closing
    except TimeoutError:
        log.warning("%s did not stop within %.0f s", name, deadline)
    except Exception:
        log.exception("%s failed while stopping", name)


async def _awaited(task: asyncio.Task[None]) -> None:
    await task


def _listening_socket(host: str, port: int, what: str, switch: str | None) -> socket.socket:
    """The HTTP socket of `what`, bound to `host`:`port` as uvicorn binds it (IPv6 for a host
    with a colon, the address reusable at once after a restart); `switch`: the `http` setting
    that turns `what` off, for the error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise cannot_listen(what, host, port, "http", exc, switch=switch) from None
    except BaseException:
        sock.close()
        raise
    return sock


class _QuietUvicorn(uvicorn.Server):
    """uvicorn's server without its own signal handling: App owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
