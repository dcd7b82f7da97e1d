"""The SFTP front: listens for SSH connections, authenticates users, and serves SFTP and SCP.

`SFTPFront` owns the listener, the host keys (shared by every node through the database), the
brute-force defender and every open session; each session gets a `Storage` for its user from
the storage backend that `app.py` opened. A user who is disabled, removed or whose credentials
change loses their open sessions at once (`AccountService.user_revoked_hooks`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import ipaddress
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import asyncssh
from asyncssh.channel import SSHChannel

from sftphook.accounts.passwords import verify_password_async
from sftphook.accounts.validation import key_refusal
from sftphook.addresses import address_key, describe
from sftphook.errors import cannot_listen
from sftphook.sftp import algorithms, hostkeys, proxyproto
from sftphook.sftp.bans import SharedBans
from sftphook.sftp.defender import Defender
from sftphook.sftp.handler import StreamSession
from sftphook.sftp.offload import Offload
from sftphook.sftp.session import SFTPSession
from sftphook.sftp.transfer import Digests
from sftphook.sftp.wire import (
    coalesce_writes,
    lean_input_buffer,
    quiet_packet_logs,
    skip_ignore_padding,
    watch_write_pressure,
)
from sftphook.storage.base import ReadHandle, Storage, StorageBackend

if TYPE_CHECKING:
    from sftphook.accounts import AccountService
    from sftphook.audit import SecurityRecorder
    from sftphook.config import Settings
    from sftphook.events import EventRecorder
    from sftphook.store import Database
    from sftphook.store.models import User
    from sftphook.webhooks.crypto import SecretBox

log = logging.getLogger(__name__)

# Why a connection may be refused before its key exchange (`SFTPFront.refused`).
REFUSALS = ("address_limit", "banned", "login_limit", "node_limit")

# Seconds a refused connection may take to send its version line and hear why it is refused;
# no limit counts it meanwhile, so it is not left to `login_timeout`.
REFUSED_GRACE = 5.0

# Uploads under a client-side temporary name, remembered until renamed to their final name.
_REMEMBERED_UPLOADS = 10_000
# How often open sessions are compared with their users as stored: a change made by another
# process (the command line) or node reaches its sessions within this many seconds.
ACCOUNT_CHECK_SECONDS = 2.0
_UploadKey = tuple[str, tuple[str, ...]]


class ConnectionState:
    """What a session needs to know about its authenticated connection."""

    def __init__(self, user: User, client_ip: str, session_id: str) -> None:
        self.user = user
        self.client_ip = client_ip
        self.session_id = session_id


@dataclasses.dataclass(frozen=True)
class HostKeys:
    """The install's host keys, and what the server offers of them: each with only the
    signature algorithms `sftp.signature_algorithms` leaves it."""

    keys: list[asyncssh.SSHKey]
    offered: list[Any]

    @classmethod
    async def load(cls, settings: Settings, db: Database, box: SecretBox) -> HostKeys:
        """The keys every node shares (`hostkeys.load_shared`). Raises InvalidConfiguration
        when `sftp.signature_algorithms` leaves none of them to offer: `app.py` loads them
        before any role listens, so such settings stop the node before it serves."""
        keys = await hostkeys.load_shared(db, box, settings.host_keys_dir)
        offered: list[Any] = list(keys)
        if settings.sftp.signature_algorithms:
            offered = algorithms.host_keys_signing_with(keys, settings.sftp.signature_algorithms)
        return cls(keys, offered)


class SFTPFront:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        accounts: AccountService,
        recorder: EventRecorder,
        storage: StorageBackend,
        secret_box: SecretBox,
        *,
        security: SecurityRecorder | None = None,
        host_keys: HostKeys | None = None,
    ) -> None:
        self.settings = settings
        # Loaded by `start` unless given (already held to `sftp.signature_algorithms`).
        self._loaded_host_keys = host_keys
        # Failed logins and bans go to the audit log through it (buffered, aggregated).
        self.security = security
        self.db = db
        self.accounts = accounts
        self.recorder = recorder
        self.storage = storage
        self._secret_box = secret_box
        cfg = settings.sftp
        self.defender = Defender(
            threshold=cfg.ban_threshold, window=cfg.ban_window, duration=cfg.ban_duration
        )
        self.bans = SharedBans(db, self.defender, on_banned=self.address_banned)
        self._proxies = (
            [ipaddress.ip_network(net, strict=False) for net in cfg.trusted_proxies]
            if cfg.proxy_protocol
            else []
        )
        self._bans_task: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._accounts_task: asyncio.Task[None] | None = None
        # A network store spends its threads waiting, not working: more of them.
        workers = 32 if storage.blocking else 8
        self.io_executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sftp-io")
        # One for the process: a slow disk is slow for every session.
        self.offload = Offload(self.io_executor, blocking=storage.blocking)
        self.host_keys: list[asyncssh.SSHKey] = []
        self._server: asyncssh.SSHAcceptor | None = None
        self._connections: set[_Connection] = set()
        # Admitted connections per client address (`sftp.max_connections_per_address`), an
        # IPv6 client's network (`address_key`).
        self._per_address: collections.Counter[str] = collections.Counter()
        # Of those, the ones not logged in yet (`sftp.max_logging_in`).
        self._logging_in = 0
        # Connections refused before their key exchange, by reason, and those closed idle
        # (for /metrics).
        self.refused: collections.Counter[str] = collections.Counter(dict.fromkeys(REFUSALS, 0))
        self.closed_idle = 0
        self._sessions: set[SFTPSession] = set()
        self._no_sessions = asyncio.Event()
        self._no_sessions.set()
        self._uploads: collections.OrderedDict[_UploadKey, tuple[int, str | None]] = (
            collections.OrderedDict()
        )
        # SHA-256s read back from files of `storage` (`hash_file`), by their identities.
        self.digests = Digests()
        accounts.user_revoked_hooks.append(self.revoke_user)

    # Lifecycle

    async def start(self) -> None:
        """Listen; returns once connections are accepted (`port` is the bound port)."""
        loaded = self._loaded_host_keys or await HostKeys.load(
            self.settings, self.db, self._secret_box
        )
        self.host_keys = loaded.keys
        for algorithm, fingerprint in self.host_key_fingerprints:
            log.info("SFTP host key %s %s", algorithm, fingerprint)
        cfg = self.settings.sftp
        options: dict[str, Any] = {}
        if cfg.ciphers:
            options["encryption_algs"] = cfg.ciphers
        if cfg.kex_algorithms:
            options["kex_algs"] = cfg.kex_algorithms
        if cfg.mac_algorithms:
            options["mac_algs"] = cfg.mac_algorithms
        if cfg.signature_algorithms:
            # asyncssh only announces these (`server-sig-algs`): the host keys are narrowed
            # by `HostKeys.load`, and client keys in `validate_public_key`.
            options["signature_algs"] = cfg.signature_algorithms
        try:
            self._server = await asyncssh.create_server(
                lambda: _Connection(self),
                cfg.host,
                cfg.port,
                server_host_keys=loaded.offered,
                server_version="sftphook",
                login_timeout=cfg.login_timeout,
                keepalive_interval=cfg.keepalive_interval,
                allow_pty=False,
                # No shells here: SFTP and SCP channels carry bytes, without a line editor.
                line_editor=False,
                x11_forwarding=False,
                agent_forwarding=False,
                **options,
            )
        except OSError as exc:
            raise cannot_listen("SFTP", cfg.host, cfg.port, "sftp", exc) from None
        log.info("SFTP on %s:%d", cfg.host, self.port)
        self._bans_task = asyncio.create_task(self.bans.run(), name="sftp-bans")
        if cfg.idle_timeout:
            self._idle_task = asyncio.create_task(
                self._close_idle(cfg.idle_timeout), name="sftp-idle"
            )
        self._accounts_task = asyncio.create_task(self._watch_accounts(), name="sftp-accounts")

    @property
    def port(self) -> int:
        if self._server is None:
            return self.settings.sftp.port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def accepting(self) -> bool:
        """Listening and taking connections: false before `start()` and from `close()` on."""
        return self._server is not None and self._server.is_serving()

    @property
    def host_key_fingerprints(self) -> list[tuple[str, str]]:
        """(algorithm, "SHA256:…") of each host key, for `serve` and the dashboard to show."""
        return hostkeys.fingerprints(self.host_keys)

    async def close(self, deadline: float = 10.0) -> None:
        """Stop accepting, end every session (open uploads are discarded), wait for them."""
        if self._server is not None:
            self._server.close()
        # The connections are closed before waiting for the listener: from Python 3.12.1,
        # `wait_closed()` also waits for every connection it accepted to close.
        for connection in list(self._connections):
            connection.close()
        try:
            async with asyncio.timeout(deadline):
                await self._no_sessions.wait()
                if self._server is not None:
                    await self._server.wait_closed()
        except TimeoutError:
            log.warning("%d SFTP session(s) did not end in time", len(self._sessions))
        tasks = [
            t for t in (self._bans_task, self._idle_task, self._accounts_task) if t is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.bans.close()
        self.io_executor.shutdown(wait=True, cancel_futures=True)

    async def _close_idle(self, limit: float) -> None:
        """Close the logged-in connections that moved no data for `limit` seconds and had no
        request in flight meanwhile (those still logging in have `login_timeout`)."""
        while True:
            await asyncio.sleep(min(30.0, limit / 4))
            now = time.monotonic()
            for connection in list(self._connections):
                idle = connection.idle_for(now)
                if idle is None or idle < limit:
                    continue
                address = connection.client_ip
                self.closed_idle += 1
                log.info(
                    "closed the connection of %s from %s: idle for %d s",
                    connection.username,
                    address,
                    idle,
                )
                try:
                    connection.disconnect(
                        asyncssh.DISC_BY_APPLICATION, f"idle for {limit:g} s: connection closed"
                    )
                except Exception:  # one connection's trouble must not stop the sweep
                    log.exception("could not close an idle connection from %s", address)

    async def _watch_accounts(self) -> None:
        """End the sessions of users changed elsewhere: `revoke_user` hears of changes made in
        this process only, not of those made by the command line or on another node."""
        while True:
            await asyncio.sleep(ACCOUNT_CHECK_SECONDS)
            logged_in = [(c, c.user) for c in list(self._connections) if c.user is not None]
            if not logged_in:
                continue
            try:
                current = await self.accounts.current_users({u.username for _, u in logged_in})
            except Exception as error:  # the database may be restarting: try again later
                log.warning("could not check the accounts of open sessions: %s", error)
                continue
            for connection, user in logged_in:
                now = current.get(user.username)
                if (
                    now is not None
                    and now.enabled
                    and now.session_access() == user.session_access()
                ):
                    continue
                log.info("ending the session of %s: the account changed", user.username)
                try:
                    connection.disconnect(
                        asyncssh.DISC_BY_APPLICATION, "the account changed: session ended"
                    )
                except Exception:  # one connection's trouble must not stop the check
                    log.exception("could not end a session of %s", user.username)

    def is_trusted_proxy(self, address: str) -> bool:
        """Whether connections from `address` start with a PROXY header (`sftp.proxy_protocol`)."""
        if not self._proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    def address_banned(self, address: str, network: str) -> None:
        """Put a ban (this node's or the cluster's) in the audit log: `address` made the
        failure that got it banned, `network` is what is banned (its key, `address_key`)."""
        if self.security is None:
            return
        cfg = self.settings.sftp
        self.security.address_banned(
            source="sftp",
            address=address,
            network=network,
            duration=cfg.ban_duration,
            failures=cfg.ban_threshold,
            window=cfg.ban_window,
        )

    # Sessions

    @property
    def sessions(self) -> frozenset[SFTPSession]:
        """The open SFTP and SCP sessions."""
        return frozenset(self._sessions)

    def session_opened(self, session: SFTPSession) -> None:
        self._sessions.add(session)
        self._no_sessions.clear()

    def session_closed(self, session: SFTPSession) -> None:
        self._sessions.discard(session)
        if not self._sessions:
            self._no_sessions.set()

    def connection_opened(self, connection: _Connection) -> None:
        self._connections.add(connection)

    def connection_closed(self, connection: _Connection) -> None:
        self._connections.discard(connection)

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address` (a client's key, `address_key`: an IPv6
        client's network), or say why the limits refuse it."""
        cfg = self.settings.sftp
        if cfg.max_connections and self.connection_count >= cfg.max_connections:
            self.refused["node_limit"] += 1
            return (
                f"the server is serving its limit of {cfg.max_connections} connections: "
                "try again later"
            )
        per_address = cfg.max_connections_per_address
        if per_address and self._per_address[address] >= per_address:
            self.refused["address_limit"] += 1
            return (
                f"too many connections from {address} (the limit is {per_address}): "
                "close one and try again"
            )
        if cfg.max_logging_in and self._logging_in >= cfg.max_logging_in:
            self.refused["login_limit"] += 1
            return "too many connections are logging in: try again in a moment"
        self._per_address[address] += 1
        self._logging_in += 1
        return None

    def logged_in(self) -> None:
        """An admitted connection has logged in."""
        self._logging_in -= 1

    def release(self, address: str, logging_in: bool) -> None:
        """An admitted connection from `address` has ended (before logging in or after)."""
        if logging_in:
            self._logging_in -= 1
        self._per_address[address] -= 1
        if self._per_address[address] <= 0:
            del self._per_address[address]

    @property
    def connection_count(self) -> int:
        """Connections admitted and not yet ended."""
        return self._per_address.total()

    @property
    def logging_in_count(self) -> int:
        """Of those, the ones that have not logged in yet."""
        return self._logging_in

    def revoke_user(self, username: str) -> None:
        """End every open connection of `username` (disabled, removed, credentials changed)."""
        for connection in list(self._connections):
            if connection.username == username:
                log.info("ending the session of %s: the account changed", username)
                connection.disconnect(
                    asyncssh.DISC_BY_APPLICATION, "the account changed: session ended"
                )

    async def open_storage(self, user: User) -> Storage:
        """The user's files, confined to their home (made if missing)."""
        return await self.offload.run(
            "for_user", self.storage.for_user, user.organization_id, user.home
        )

    # Uploads under client-side temporary names

    def remember_upload(
        self, org: str, parts: tuple[str, ...], result: tuple[int, str | None]
    ) -> None:
        self._uploads[(org, parts)] = result
        while len(self._uploads) > _REMEMBERED_UPLOADS:
            self._uploads.popitem(last=False)

    def take_upload(self, org: str, parts: tuple[str, ...]) -> tuple[int, str | None] | None:
        return self._uploads.pop((org, parts), None)

    def remembered_upload(self, org: str, parts: tuple[str, ...]) -> tuple[int, str | None] | None:
        return self._uploads.get((org, parts))

    async def hash_file(self, handle: ReadHandle, size: int) -> str | None:
        """The SHA-256 of the open file `handle`, which was `size` bytes when looked at; None
        if it is not that size now (another file was put in its place meanwhile). Reads at
        most one byte more than `size`, whatever the file has become; not at all when the file
        is, by its identity, one read before (`Digests`: links to one file cost one read)."""

        def digest() -> str | None:
            try:
                return self.digests.read(handle, size)
            finally:
                handle.close()

        return await asyncio.get_running_loop().run_in_executor(self.io_executor, digest)


def _offer_openssh_gcm(conn: asyncssh.SSHServerConnection) -> None:
    """Offer OpenSSH clients only the AES-GCM ciphers of the configured list.

    The client's order decides, and OpenSSH's puts chacha20-poly1305 and then aes-ctr before
    AES-GCM, which asyncssh runs 1.3-1.9x faster. Every OpenSSH since 6.2 has AES-GCM; other
    clients (paramiko, JSch, WinSCP) are offered the whole list. asyncssh sends its key exchange
    offer once it has read the client's version line, so the offer can depend on it.
    """
    send_kexinit = conn._send_kexinit

    def send_tailored_kexinit() -> None:
        version = str(conn.get_extra_info("client_version", ""))
        if version.startswith("SSH-2.0-OpenSSH_"):
            gcm = [alg for alg in conn._enc_algs if alg.endswith(b"-gcm@openssh.com")]
            if gcm:
                conn._enc_algs = gcm
        send_kexinit()

    conn._send_kexinit = send_tailored_kexinit  # type: ignore[method-assign]


def _refuse_at_kexinit(conn: asyncssh.SSHServerConnection, reason: str) -> None:
    """Close `conn` with `reason` as soon as the client's version line is read.

    A DISCONNECT may be sent before the key exchange (in clear, RFC 4253 §11.1): the client
    shows the reason ("Received disconnect from …: too many connections…") and the server
    spends no key exchange on a connection it will not serve. A client that sends no version
    line within `REFUSED_GRACE` seconds is dropped without it.
    """

    def refuse() -> None:
        conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, reason)

    def drop() -> None:
        if not conn.is_closed():
            conn.abort()

    conn._send_kexinit = refuse  # type: ignore[method-assign]
    asyncio.get_running_loop().call_later(REFUSED_GRACE, drop)


class _Connection(asyncssh.SSHServer):
    """One SSH connection: authentication, then session channels."""

    def __init__(self, front: SFTPFront) -> None:
        self._front = front
        self._conn: asyncssh.SSHServerConnection | None = None
        self.client_ip = "unknown"
        # What the limits and bans count it under: an IPv6 client's network (`address_key`).
        self.client_key = "unknown"
        self.session_id = uuid.uuid4().hex
        self.username: str | None = None
        self._candidate: User | None = None
        self._user: User | None = None
        self._rejected_key = False
        # The password check running on this connection (`validate_password`).
        self._checking: asyncio.Future[bool] | None = None
        self._authenticated = False
        # The key counted against the connection limits (`client_key`), once admitted.
        self._admitted: str | None = None
        self._sessions: set[StreamSession] = set()
        # When the connection last logged in or ended a session (`time.monotonic()`).
        self._last_active = time.monotonic()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        coalesce_writes(conn)
        watch_write_pressure(conn)
        lean_input_buffer(conn)
        skip_ignore_padding(conn)
        quiet_packet_logs(conn)
        peer = conn.get_extra_info("peername")
        if peer:
            self._set_client(str(peer[0]))
        self._front.connection_opened(self)
        if self._front.settings.sftp.openssh_gcm_only:
            _offer_openssh_gcm(conn)
        if self._front.is_trusted_proxy(self.client_ip):
            self._read_proxy_header(conn)
            return
        self._admit(conn)

    def _set_client(self, address: str) -> None:
        self.client_ip = address
        self.client_key = address_key(address, self._front.settings.sftp.ipv6_prefix)

    @property
    def _client(self) -> str:
        """The client for a log line: its address, and its network when that is what is
        counted and banned."""
        return describe(self.client_key, self.client_ip)

    def _admit(self, conn: asyncssh.SSHServerConnection) -> None:
        """Refuse a banned address, or one past the connection limits; count the others."""
        if self._banned():
            # Before the key exchange: a banned address costs no CPU.
            log.info("refused a connection from banned %s", self._client)
            self._front.refused["banned"] += 1
            conn.close()
            return
        refusal = self._front.admit(self.client_key)
        if refusal is not None:
            log.warning("refused a connection from %s: %s", self.client_ip, refusal)
            _refuse_at_kexinit(conn, refusal)
            return
        self._admitted = self.client_key

    def _read_proxy_header(self, conn: asyncssh.SSHServerConnection) -> None:
        """Take the client's address from the balancer's PROXY header, then hand the rest of
        the stream to asyncssh (its `data_received` is wrapped until the header is read)."""
        received = bytearray()
        balancer = self.client_ip

        def data_received(data: bytes, datatype: int | None = None) -> None:
            received.extend(data)
            try:
                parsed = proxyproto.parse(bytes(received))
            except proxyproto.ProxyHeaderError as exc:
                log.warning("closed a connection from balancer %s: %s", balancer, exc)
                del conn.data_received
                conn.abort()
                return
            if parsed is None:
                return
            address, used = parsed
            del conn.data_received
            if address is not None:
                self._set_client(address)
            self._admit(conn)
            if conn.is_closed():
                return
            if len(received) > used:
                conn.data_received(bytes(received[used:]), datatype)

        conn.data_received = data_received  # type: ignore[method-assign]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._authenticated and self._rejected_key:
            self._failed("publickey")
        if self._admitted is not None:
            self._front.release(self._admitted, logging_in=not self._authenticated)
            self._admitted = None
        self._front.connection_closed(self)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def disconnect(self, code: int, reason: str) -> None:
        """End the connection with `reason`, which the client shows its user.

        asyncssh's `disconnect()` closes the channels before it sends the reason, and an
        OpenSSH client whose last channel closes exits without reading further: the reason
        goes first here, then the connection closes as when a client drops it.
        """
        conn = self._conn
        if conn is not None and not conn.is_closed():
            conn._send_disconnect(code, reason, asyncssh.DEFAULT_LANG)
            conn._force_close(None)

    def idle_for(self, now: float) -> float | None:
        """Seconds since data last went either way on one of its sessions or one of them
        answered a long request (or since it logged in or ended its last session); 0 while a
        request is in flight; None while it is not logged in."""
        if not self._authenticated:
            return None
        last = max([self._last_active, *(s.active_at(now) for s in self._sessions)])
        return now - last

    def _banned(self) -> bool:
        return self._front.defender.is_banned(self.client_key, time.monotonic())

    def _failed(self, method: str) -> None:
        front = self._front
        key = self.client_key
        banned = front.defender.failed(key, time.monotonic(), client=self.client_ip)
        front.bans.failed(key, self.client_ip)
        if front.security is None:
            return
        # A known user's organization sees the failure; an unknown name belongs to none.
        user = self._candidate
        front.security.login_failed(
            [user.organization_id if user is not None else None],
            source="sftp",
            address=self.client_ip,
            network=key,
            username=self.username or "",
            method=method,
        )
        if banned:
            front.address_banned(self.client_ip, key)

    def _refuse_banned(self) -> None:
        log.info("refused a login from banned %s", self._client)
        if self._conn is not None and not self._conn.is_closed():
            self._conn.disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                "too many failed logins: try again later",
            )

    async def begin_auth(self, username: str) -> bool:
        if self._banned():
            self._refuse_banned()
            return True
        self.username = username
        self._candidate = await self._front.accounts.login_candidate(username)
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        # asyncssh cancels this when the client's next request arrives, but a hash it started
        # runs on in its thread: one check at a time per connection, the next waiting for the
        # one running, and each check made counts (`_check_password`), answered or not.
        while self._checking is not None:
            await asyncio.wait([self._checking])  # a cancelled wait leaves the check running
        user = self._candidate if username == self.username else None
        check = asyncio.ensure_future(self._check_password(username, user, password))
        self._checking = check
        check.add_done_callback(self._password_checked)
        await asyncio.wait([check])
        if check.result() and user is not None:
            self._user = user
            return True
        return False

    async def _check_password(self, username: str, user: User | None, password: str) -> bool:
        ok = await verify_password_async(user.password_hash if user else None, password)
        if ok and user is not None and not self._banned():
            await self._front.accounts.rehash_password(user, password)
            return True
        log.info("failed password login for %r from %s", username, self.client_ip)
        self._failed("password")
        if self._banned():
            self._refuse_banned()
        return False

    def _password_checked(self, check: asyncio.Future[bool]) -> None:
        if self._checking is check:
            self._checking = None
        if not check.cancelled():
            check.exception()  # retrieved: an error reaches the waiter, if one is left

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        user = self._candidate if username == self.username else None
        if user is not None and not self._banned():
            offered = key.public_data
            for line in user.public_keys.splitlines():
                try:
                    stored = asyncssh.import_public_key(line)
                except (asyncssh.KeyImportError, ValueError):
                    continue
                # Keys stored before the type and size rules are refused, not trusted.
                if stored.public_data == offered and key_refusal(stored) is None:
                    if allowed := self._front.settings.sftp.signature_algorithms:
                        algorithms.limit_signatures(key, allowed)
                    self._user = user
                    return True
        self._rejected_key = True
        return False

    @property
    def user(self) -> User | None:
        """The user this connection logged in as (None until it has)."""
        return self._user if self._authenticated else None

    def auth_completed(self) -> None:
        self._authenticated = True
        if self._admitted is not None:
            self._front.logged_in()
        self._last_active = time.monotonic()
        assert self._user is not None
        log.info(
            "login %s from %s (session %s)", self._user.username, self.client_ip, self.session_id
        )

    def session_requested(self) -> StreamSession:
        assert self._user is not None
        front = self._front
        limit = front.settings.sftp.max_sessions_per_connection
        if len(self._sessions) >= limit:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_RESOURCE_SHORTAGE,
                f"this connection already has {limit} sessions open: close one first",
            )
        state = ConnectionState(self._user, self.client_ip, self.session_id)

        async def sftp_factory(chan: SSHChannel[bytes]) -> asyncssh.SFTPServer:
            storage = await front.open_storage(state.user)
            return SFTPSession(cast(asyncssh.SSHServerChannel[bytes], chan), front, state, storage)

        session = StreamSession(None, sftp_factory, 3, front.settings.sftp.allow_scp)
        self._sessions.add(session)

        def closed() -> None:
            self._sessions.discard(session)
            self._last_active = time.monotonic()

        session.on_closed = closed
        return session
