"""The delivery engine: claims due deliveries from the store, sends them, records every attempt.

The database is the queue. One dispatcher per node leases due deliveries in batches (as many as
there are free send slots) and starts a send task for each; the recorder's commit hook wakes it
the moment an event's deliveries are committed, and a timer wakes it for scheduled retries, for
expiring leases and, as a safety net, for work committed by another process. A send slot is free
again as soon as its request is answered; results go to one writer that records attempts and
decisions in grouped transactions. Under load the dispatcher waits until a quarter of the slots
are free before it claims again, so claims and writes stay batched; the number of results not yet
recorded is bounded too. Until a result is recorded its lease keeps the delivery from being
claimed again, and a strictly ordered webhook's next delivery waits for that record.

A claim (with its events, its webhooks and the next due time) and a batch of results are each
one `Database.write` of Core statements: on SQLite one hand-off to the store's writer thread.
Jobs are built, and decisions made, on the event loop; a batch that pauses a webhook (rare)
goes through an ORM session instead, where the audit line and the owner notice join it.

Several nodes share one PostgreSQL database: claims use `FOR UPDATE SKIP LOCKED` (see
store/deliveries.py), and every node's dispatcher LISTENs on the channel the fan-out NOTIFYs in
its own transaction, so a woken node always finds the rows committed. The LISTEN connection is
checked, and opened again when PostgreSQL restarts; the timer stays as the safety net. While the
database is unreachable, claims wait for the next tick and results are written again with a
growing pause (a result written after its lease ran out is kept as an attempt, and the delivery
is decided by the worker that holds it now).

Per-webhook limits (max concurrency, rate limit; `throttle.py`) gate each claimed job: it starts,
waits holding its lease, or goes back; a webhook at its limits is left out of claims, so it never
holds up the others. The attempt path depends on the endpoint type (`endpoints.py`): signed JSON,
a Slack or Teams message, or an email through the configured SMTP server.

Shutdown: stop claiming, let in-flight sends finish within a deadline, cancel the rest and give
their leases back, flush the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from sftphook.channels import SMTPError, SMTPPermanentError, SMTPSender, parse_recipients
from sftphook.channels.email import build_message
from sftphook.config import SMTPSettings, WebhookSettings
from sftphook.errors import InvalidInput
from sftphook.events.model import EventRecord
from sftphook.store import deliveries as delivery_store
from sftphook.store import events as event_store
from sftphook.store import webhooks as webhook_store
from sftphook.store.database import Database, is_connection_lost, retry_while_unreachable
from sftphook.store.ids import IDS
from sftphook.store.models import Attempt, Delivery, Webhook, now_ms
from sftphook.webhooks import endpoints, payload, signing, tuning
from sftphook.webhooks.crypto import SecretBox
from sftphook.webhooks.http import HttpTransport
from sftphook.webhooks.metrics import Metrics
from sftphook.webhooks.retry import Decision, Outcome, Verdict, decide
from sftphook.webhooks.sender import (
    Response,
    Transport,
    TransportError,
    masked_headers,
    request_headers,
)
from sftphook.webhooks.throttle import Admission, Limits, Throttle
from sftphook.webhooks.urlsafety import UrlPolicy

log = logging.getLogger(__name__)

# How long the dispatcher sleeps at most when nothing woke it (work from another process).
SAFETY_INTERVAL = 2.0
WRITE_BATCH = 256
# How often an idle LISTEN connection is checked (a dead peer may send nothing).
LISTEN_CHECK_INTERVAL = 15.0
LISTEN_RETRY_MAX = 5.0
# Host names of webhook URLs kept for the attempt log (cleared when it grows past this).
HOST_CACHE_SIZE = 4096
# A claim lasts this much longer than its attempt may take, for the result to be recorded.
LEASE_MARGIN = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery with everything needed to send it, decrypted in memory only."""

    delivery_id: str
    organization_id: str
    webhook_id: str
    topic: str
    kind: str
    attempt_number: int
    lease_token: str
    ordered: bool
    url: str
    secrets: tuple[str, ...]
    authorization: str | None
    event: EventRecord | None
    ping: dict[str, Any] | None
    # The endpoint type: webhook | slack | teams | email.
    type: str = "webhook"
    # The webhook's own timeout and retry schedule; None: the configured ones.
    timeout: float | None = None
    retry_schedule: tuple[float, ...] | None = None
    limits: Limits = Limits()


@dataclasses.dataclass(slots=True)
class AttemptResult:
    job: Job
    attempt_id: str
    started_at: int
    duration_ms: float
    request_headers: dict[str, str]
    request_body: bytes
    response: Response | None
    error: str | None
    # Set when the answer is not HTTP (SMTP): what it means for the retry decision.
    outcome: Outcome | None = None


def build_body(job: Job, attempt_id: str) -> bytes:
    if job.event is not None:
        return payload.event_payload(
            job.event,
            webhook_id=job.webhook_id,
            delivery_id=job.delivery_id,
            attempt_id=attempt_id,
        )
    if job.ping is None:
        raise ValueError(f"delivery {job.delivery_id} has neither an event nor a payload")
    return payload.ping_payload(
        ping_id=job.ping["id"],
        created_at=job.ping["created_at"],
        webhook=job.ping["webhook"],
        actor_type=job.ping.get("actor_type", "User"),
        actor_id=job.ping.get("actor_id", "operator"),
        delivery_id=job.delivery_id,
        attempt_id=attempt_id,
    )


def outcome_of(result: AttemptResult) -> Outcome:
    if result.outcome is not None:
        return result.outcome
    if result.response is None:
        return Outcome(status=None, error=result.error or "no response")
    return Outcome(
        status=result.response.status,
        retry_after=_header(result.response.headers, "Retry-After"),
    )


def _header(headers: dict[str, str], name: str) -> str | None:
    lower = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lower), None)


class DeliveryEngine:
    def __init__(
        self,
        db: Database,
        settings: WebhookSettings,
        box: SecretBox,
        metrics: Metrics,
        *,
        transport: Transport | None = None,
        safety_interval: float = SAFETY_INTERVAL,
        rng: random.Random | None = None,
        clock: Callable[[], int] = now_ms,
        smtp: SMTPSettings | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._smtp = smtp or SMTPSettings()
        self._box = box
        self._metrics = metrics
        # Built when first needed: a CLI command that never sends never reads the CA bundle.
        self._transport_given = transport
        self._transport_built: Transport | None = None
        self._safety = safety_interval
        self._rng = rng or random.Random()
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._drain_deadline = 10.0
        self._inflight: dict[asyncio.Task[None], Job] = {}
        self._results: asyncio.Queue[AttemptResult | None] = asyncio.Queue()
        # Claimed but not yet recorded (sending, or waiting for the writer); bounded.
        self._unrecorded = 0
        self._max_unrecorded = settings.workers * 4
        self._batch_threshold = max(1, settings.workers // 4)
        # The dispatcher left work unclaimed for want of slots: wake it when enough free up.
        self._starved = False
        self._finished = asyncio.Event()
        self._running = False
        self._secret_cache: dict[str, str] = {}
        self._stop_signal = asyncio.Event()
        # True while a LISTEN connection is open (PostgreSQL).
        self.listening = False
        # Called in the transaction that pauses a webhook on its own (the audit line and the
        # owner notice, which is handed over once that transaction commits).
        self.paused_hook: Callable[[AsyncSession, Webhook], Awaitable[None]] | None = None
        # Per-webhook limits; held jobs keep their lease, so they go back well before it ends.
        self._throttle: Throttle[Job] = Throttle(max_hold_seconds=settings.lease_seconds / 2)
        self._throttle_timer: asyncio.TimerHandle | None = None
        self._give_back: list[Job] = []
        self._hosts: dict[str, str | None] = {}

    @property
    def _transport(self) -> Transport:
        if self._transport_given is not None:
            return self._transport_given
        if self._transport_built is None:
            settings = self._settings
            try:
                self._transport_built = HttpTransport(
                    UrlPolicy.from_settings(settings.allow_http, settings.allowed_networks),
                    timeout=settings.timeout,
                    ca_bundle=settings.ca_bundle,
                    max_body=settings.max_response_body,
                    connections=settings.workers,
                )
            except (OSError, ValueError) as exc:
                raise ValueError(
                    f"webhooks.ca_bundle {settings.ca_bundle}: cannot load it ({exc})"
                ) from exc
        return self._transport_built

    # Signals

    def wake(self, *_: Any) -> None:
        """Claim now (the recorder's commit hook, a ping, a re-send). Never blocks."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def claiming(self) -> bool:
        """Running and taking due deliveries: false before `run()` and from `stop()` on."""
        return self._running and not self._stopping

    # Lifecycle

    async def run(self, started: asyncio.Event | None = None) -> None:
        """Dispatch until `stop()`; returns once in-flight work is drained and recorded."""
        self._transport  # noqa: B018 - a bad CA bundle stops the start, not every send
        if self._settings.lease_seconds <= self._settings.timeout:
            # Allowed (tests shorten leases on purpose), but a slow answer then outlives its
            # claim, and another worker sends the delivery again meanwhile.
            log.warning(
                "webhooks.lease_seconds (%g s) is not longer than webhooks.timeout (%g s): a "
                "receiver that answers slowly gets its deliveries again from other workers",
                self._settings.lease_seconds,
                self._settings.timeout,
            )
        self._running = True
        self._finished.clear()
        self._stop_signal.clear()
        writer = asyncio.create_task(self._write_loop(), name="webhook-writer")
        listener = asyncio.create_task(self._listen(), name="webhook-listener")
        if started is not None:
            started.set()
        cancelled: list[Job] = []
        try:
            await self._dispatch_loop()
            if self._inflight:
                done, pending = await asyncio.wait(
                    set(self._inflight), timeout=self._drain_deadline
                )
                for task in pending:
                    cancelled.append(self._inflight[task])
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            for task, job in list(self._inflight.items()):
                if not task.done():
                    task.cancel()
                    cancelled.append(job)
            if self._throttle_timer is not None:
                self._throttle_timer.cancel()
            cancelled.extend(self._throttle.drain())
            cancelled.extend(self._give_back)
            self._give_back.clear()
            self._results.put_nowait(None)
            await asyncio.shield(writer)
            if cancelled:
                await self._release(cancelled)
            await self._transport.close()
            self._running = False
            self._finished.set()

    async def stop(self, deadline: float = 10.0) -> None:
        """Stop claiming, wait up to `deadline` seconds for in-flight sends, cancel the rest."""
        self._drain_deadline = deadline
        self._stopping = True
        self._stop_signal.set()
        self._wake.set()
        if self._running:
            await self._finished.wait()

    async def _listen(self) -> None:
        """On PostgreSQL, wake on NOTIFY from any node (events, pings, re-sends elsewhere);
        open the channel again whenever its connection is lost."""
        if self._db.is_sqlite:
            return
        pause = 0.25
        while not self._stopping:
            try:
                if not await self._listen_once():
                    log.warning(
                        "the database driver cannot LISTEN; workers poll every %.0f s", self._safety
                    )
                    return
                pause = 0.25
            except asyncio.CancelledError:
                raise
            except Exception as error:
                reason = "unreachable" if is_connection_lost(error) else repr(error)
                log.warning(
                    "delivery notifications: database %s; listening again in %.1f s", reason, pause
                )
            if self._stopping:
                break
            # Anything announced while nobody listened is found by the next claim.
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._stop_signal.wait()
            pause = min(LISTEN_RETRY_MAX, pause * 2)

    async def _listen_once(self) -> bool:
        """Listen until stopped (True) or the connection fails (raises); False: cannot LISTEN."""
        async with self._db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            if driver is None or not hasattr(driver, "add_listener"):
                return False
            lost = asyncio.Event()
            driver.add_termination_listener(lambda _conn: lost.set())
            await driver.add_listener(delivery_store.CHANNEL, self.wake)
            self.listening = True
            self._wake.set()  # catch up on what was announced before we listened
            try:
                while not self._stop_signal.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(LISTEN_CHECK_INTERVAL):
                            await _first(lost.wait(), self._stop_signal.wait())
                    if lost.is_set() or driver.is_closed():
                        raise ConnectionError("the notification connection was closed")
                    if not self._stop_signal.is_set():
                        async with asyncio.timeout(5):
                            await driver.execute("SELECT 1")
            except BaseException:
                self.listening = False
                await conn.invalidate()  # never hand a broken connection back to the pool
                raise
            self.listening = False
            await driver.remove_listener(delivery_store.CHANNEL, self.wake)
        return True

    async def _release(self, jobs: Sequence[Job]) -> None:
        leases = [(j.delivery_id, j.lease_token) for j in jobs]
        try:
            await self._db.write(lambda conn: delivery_store.release_leases(conn, leases))
        except Exception:
            log.exception("could not give back %d lease(s); they expire by themselves", len(jobs))

    # Claiming

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            timeout = self._safety
            self._pump()
            if self._give_back:
                await self._return(self._give_back)
                self._give_back = []
            free = self._free()
            if 0 < free < self._batch_threshold and (self._inflight or self._unrecorded):
                self._starved = True  # let more slots free up, then claim them together
            elif free > 0:
                self._starved = False
                now = self._clock()
                try:
                    jobs, full, due = await self._claim(free, now)
                except Exception as error:
                    if is_connection_lost(error):
                        log.warning("could not claim deliveries: the database is unreachable")
                    else:
                        log.exception("could not claim deliveries")
                    jobs, full, due = [], False, None
                self._unrecorded += len(jobs)
                await self._admit(jobs)
                if full:
                    self._starved = True
                    continue
                if due is not None:
                    timeout = min(self._safety, max(0.0, (due - self._clock()) / 1000))
            else:
                self._starved = True
            if timeout <= 0:
                continue
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def claim(self, limit: int, now: int) -> list[Job]:
        """Lease up to `limit` due deliveries and load what sending them needs."""
        jobs, _, _ = await self._claim(limit, now)
        return jobs

    async def _claim(self, limit: int, now: int) -> tuple[list[Job], bool, int | None]:
        """The claim, its events and webhooks, and (when it comes back short) the next due time,
        in one write transaction; the jobs are built here, on the event loop. Returns the jobs,
        whether the claim was full, and the next due time (None when full or nothing waits)."""
        token = IDS.uuid4()
        lease_ms = round(self._settings.lease_seconds * 1000)
        exclude = list(self._throttle.busy())
        claimed, events, hooks, due = await self._db.write(
            lambda connection: _claim_rows(
                connection,
                token=token,
                now=now,
                lease_ms=lease_ms,
                limit=limit,
                exclude=exclude,
                lease_for=self._lease_ms_for,
            )
        )
        jobs: list[Job] = []
        # What each webhook's jobs share, worked out once per claim (None: it cannot be sent).
        sending: dict[str, _Sending | None] = {}
        for d in claimed:
            if d.webhook_id not in sending:
                sending[d.webhook_id] = self._sending(hooks[d.webhook_id], now)
            shared = sending[d.webhook_id]
            if shared is None:
                continue
            webhook, tuned = shared.webhook, shared.tuned
            event = events.get(d.event_id) if d.event_id else None
            jobs.append(
                Job(
                    delivery_id=d.id,
                    organization_id=d.organization_id,
                    webhook_id=d.webhook_id,
                    topic=d.topic,
                    kind=d.kind,
                    attempt_number=d.attempt_count + 1,
                    lease_token=token,
                    ordered=webhook.ordered and d.kind == "event",
                    url=webhook.url,
                    secrets=shared.secrets,
                    authorization=shared.authorization,
                    event=EventRecord(*event) if event is not None else None,
                    ping=json.loads(d.payload) if d.payload else None,
                    type=webhook.type,
                    timeout=tuned.timeout if tuned.timeout_overridden else None,
                    retry_schedule=tuned.retry_schedule,
                    limits=shared.limits,
                )
            )
        return jobs, len(claimed) >= limit, due

    def _lease_ms_for(self, webhook: Any) -> int:
        """How long a claim on this webhook's deliveries lasts (ms). A webhook's own timeout
        (up to 300 s, set through the API) may exceed the configured lease: its claims then
        last for what one attempt may take (a wait for its limits, then the timeout) and a
        margin, so that a slow answer is not taken for a dead worker's and sent again
        meanwhile. The configured timeouts are the operator's to keep below the lease.
        Pure: it runs on the store's writer thread."""
        lease = self._settings.lease_seconds
        tuned = tuning.effective(webhook.settings, self._settings)
        if not tuned.timeout_overridden:
            return round(lease * 1000)
        limited = tuned.max_concurrency is not None or tuned.rate_limit is not None
        longest = (lease / 2 if limited else 0.0) + tuned.timeout
        return round((lease if lease > longest else longest + LEASE_MARGIN) * 1000)

    def _sending(self, webhook: Any, now: int) -> _Sending | None:
        try:
            secrets = self._signing_secrets(webhook, now)
            authorization = self._decrypt(webhook.authorization_encrypted)
        except ValueError as exc:
            # One unreadable webhook must not hold up the others; its lease makes it wait.
            log.error("webhook %s cannot be sent: %s", webhook.id, exc)
            return None
        tuned = tuning.effective(webhook.settings, self._settings)
        limits = Limits(tuned.max_concurrency, tuned.rate_limit)
        return _Sending(webhook, secrets, authorization, tuned, limits)

    def _decrypt(self, sealed: str | None) -> str | None:
        if sealed is None:
            return None
        plain = self._secret_cache.get(sealed)
        if plain is None:
            if len(self._secret_cache) > 4096:
                self._secret_cache.clear()
            plain = self._box.decrypt(sealed)
            self._secret_cache[sealed] = plain
        return plain

    def _signing_secrets(self, webhook: Any, now: int) -> tuple[str, ...]:
        """`webhook`: a `Webhook` or a row with its secret columns."""
        current = self._decrypt(webhook.secret_encrypted)
        assert current is not None
        previous = None
        if webhook.previous_secret_encrypted and (webhook.previous_secret_expires_at or 0) > now:
            previous = self._decrypt(webhook.previous_secret_encrypted)
        return (current, previous) if previous else (current,)

    # Sending

    def _spawn(self, job: Job) -> None:
        task = asyncio.create_task(self._deliver(job), name=f"delivery-{job.delivery_id}")
        self._inflight[task] = job
        task.add_done_callback(self._sent)

    def _free(self) -> int:
        return min(
            self._settings.workers - len(self._inflight),
            self._max_unrecorded - self._unrecorded,
        )

    def _sent(self, task: asyncio.Task[None]) -> None:
        job = self._inflight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            # No result will come for this job: its lease expires and it is sent again.
            log.error("delivery task failed", exc_info=task.exception())
            self._unrecorded -= 1
        if job is not None and self._throttle.finished(job.webhook_id, job):
            self._pump()
            if job.webhook_id not in self._throttle.busy():
                self._wake.set()  # room for more of this webhook's due deliveries
        if self._starved and self._free() >= self._batch_threshold:
            self._wake.set()

    # Per-webhook limits

    async def _admit(self, jobs: Sequence[Job]) -> None:
        now = time.monotonic()
        back: list[Job] = []
        for job in jobs:
            admission = self._throttle.offer(job.webhook_id, job.limits, job, now)
            if admission is Admission.START:
                self._spawn(job)
            elif admission is Admission.GIVE_BACK:
                back.append(job)
        self._arm_throttle_timer(now)
        if back:
            await self._return(back)

    def _pump(self) -> None:
        """Start the held jobs that have a slot and a token now; note those held too long."""
        if self._stopping:
            return  # held jobs are handed back on the way out, not started
        now = time.monotonic()
        start, back = self._throttle.ready(now)
        for job in start:
            self._spawn(job)
        if back:
            self._give_back.extend(back)
            self._wake.set()
        self._arm_throttle_timer(now)

    def _arm_throttle_timer(self, now: float) -> None:
        if self._throttle_timer is not None:
            self._throttle_timer.cancel()
            self._throttle_timer = None
        at = self._throttle.next_ready_at(now)
        if at is not None and not self._stopping:
            self._throttle_timer = asyncio.get_running_loop().call_later(
                max(0.0, at - now), self._on_throttle_timer
            )

    def _on_throttle_timer(self) -> None:
        self._throttle_timer = None
        self._pump()

    async def _return(self, jobs: Sequence[Job]) -> None:
        """Give claimed jobs back unsent: they are due again for whoever has room."""
        self._unrecorded -= len(jobs)
        await self._release(jobs)

    async def attempt(self, job: Job) -> AttemptResult:
        """Send one attempt of `job` (no store access)."""
        if job.type == "email":
            return await self._attempt_email(job)
        attempt_id = IDS.uuid7()
        if job.type in endpoints.CHAT_TYPES:
            # A chat service reads the message, not a signature: nothing to sign.
            body = endpoints.chat_body(job.type, endpoints.notice_of(job.event, job.ping))
            headers = request_headers({}, job.authorization)
        else:
            body = build_body(job, attempt_id)
            signatures = signing.signature_headers(
                job.secrets, job.delivery_id, int(time.time()), body
            )
            headers = request_headers(signatures, job.authorization)
        started_at = self._clock()
        t0 = time.perf_counter()
        response: Response | None = None
        error: str | None = None
        try:
            send = self._transport.send
            if job.timeout is None:
                response = await send(job.url, headers, body)
            else:
                response = await send(job.url, headers, body, time_limit=job.timeout)
        except TransportError as exc:
            error = str(exc)
        except Exception as exc:
            log.exception("unexpected error sending delivery %s", job.delivery_id)
            error = f"internal error: {type(exc).__name__}"
        return AttemptResult(
            job=job,
            attempt_id=attempt_id,
            started_at=started_at,
            duration_ms=(time.perf_counter() - t0) * 1000,
            request_headers=masked_headers(headers),
            request_body=body,
            response=response,
            error=error,
        )

    async def _attempt_email(self, job: Job) -> AttemptResult:
        """Send the notice by email. The attempt log keeps the message as the request body and
        the SMTP server's answer as the response (its reply code as the status)."""
        attempt_id = IDS.uuid7()
        smtp = self._smtp
        started_at = self._clock()
        t0 = time.perf_counter()
        server = f"{smtp.host}:{smtp.port}" if smtp.host else "(none)"
        headers = {"SMTP-Server": server}
        body = b""
        response: Response | None = None
        error: str | None = None
        outcome: Outcome
        try:
            message = build_message(
                endpoints.notice_of(job.event, job.ping),
                sender=smtp.from_,
                recipients=parse_recipients(job.url),
            )
            body = message.as_bytes()
            headers.update(
                {name: str(message[name]) for name in ("From", "To", "Subject") if message[name]}
            )
            if not smtp.host:
                raise SMTPError("no SMTP server is configured (set smtp.host)")
            sender = SMTPSender(
                smtp.host,
                smtp.port,
                username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password else None,
                starttls=smtp.starttls,
                timeout=job.timeout if job.timeout is not None else smtp.timeout,
            )
            answer = await sender.send(message)
            response = Response(250, {}, answer.encode()[: self._settings.max_response_body])
            outcome = Outcome(status=250)
        except SMTPError as exc:
            error = str(exc)
            if exc.code is not None:
                response = Response(exc.code, {}, error.encode())
            outcome = Outcome(
                status=None, error=error, permanent=isinstance(exc, SMTPPermanentError)
            )
        except InvalidInput as exc:
            error = f"cannot send to these recipients: {exc.message}"
            outcome = Outcome(status=None, error=error, permanent=True)
        except Exception as exc:
            log.exception("unexpected error emailing delivery %s", job.delivery_id)
            error = f"internal error: {type(exc).__name__}"
            outcome = Outcome(status=None, error=error)
        return AttemptResult(
            job=job,
            attempt_id=attempt_id,
            started_at=started_at,
            duration_ms=(time.perf_counter() - t0) * 1000,
            request_headers=headers,
            request_body=body,
            response=response,
            error=error,
            outcome=outcome,
        )

    async def _deliver(self, job: Job) -> None:
        self._results.put_nowait(await self.attempt(job))

    # Recording

    async def _write_loop(self) -> None:
        while True:
            first = await self._results.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < WRITE_BATCH and not self._results.empty():
                item = self._results.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            decisions: list[Decision | None] = []
            try:
                decisions = await self._record_retrying(batch)
            except Exception:
                # The leases stay and expire: the deliveries are sent again, never lost.
                log.exception("could not record %d attempt(s)", len(batch))
            self._unrecorded -= len(batch)
            # Wake the dispatcher when this changes what is due: a strictly ordered webhook's
            # next delivery, a retry it does not know the time of yet, or slots it waits for.
            if (
                any(r.job.ordered for r in batch)
                or any(d is not None and d.verdict == Verdict.RETRY for d in decisions)
                or (self._starved and self._free() >= self._batch_threshold)
            ):
                self._wake.set()
            if stop:
                break

    async def _record_retrying(self, batch: Sequence[AttemptResult]) -> list[Decision | None]:
        """`record`, tried again while the database is unreachable, for as long as a lease
        lasts (after that another worker may hold the deliveries anyway)."""
        tries = 0

        async def once() -> list[Decision | None]:
            nonlocal tries
            tries += 1
            if tries > 1 and await self._recorded_before(batch):
                return [None] * len(batch)
            return await self.record(batch)

        return await retry_while_unreachable(
            once, what="recording attempts", give_up_after=self._settings.lease_seconds
        )

    async def _recorded_before(self, batch: Sequence[AttemptResult]) -> bool:
        async with self._db.session() as s:
            found = await s.scalar(
                select(Attempt.id).where(Attempt.id == batch[0].attempt_id).limit(1)
            )
        return found is not None

    async def record(self, results: Sequence[AttemptResult]) -> list[Decision | None]:
        """Store the attempts and decide each delivery's fate, in one transaction.

        The common case is one `Database.write` with Core statements. A batch that pauses a
        webhook (rare: a 410, or a failure streak at its limit) is rolled back there and
        recorded again through an ORM session, where the pause, its held deliveries and the
        `paused_hook` (the audit line, the owner notice) share the transaction."""
        now = self._clock()
        decided = [self._decide(result, now) for result in results]
        recorded = await self._db.write(
            lambda connection: _record_rows(
                connection, results, decided, now, self._settings.auto_pause_after
            )
        )
        paused: dict[str, str] = {}
        if recorded is None:
            recorded, paused = await self._record_pausing(results, decided, now)
        decisions, logged = recorded
        # Logged once committed: a node that dies before the commit never claims a result.
        if log.isEnabledFor(logging.INFO):
            for result, made_or_none in logged:
                self._log_attempt(result, made_or_none)
        observe = self._metrics.observe_attempt
        for result, made in zip(results, decisions, strict=True):
            verdict = made.verdict.value if made else "superseded"
            observe(result.job.topic, verdict, result.duration_ms / 1000)
            if made is not None and made.verdict != Verdict.RETRY:
                self._metrics.count_completed(made.verdict.value)
        for webhook_id, reason in paused.items():
            log.warning("webhook %s paused: %s", webhook_id, reason)
        return decisions

    def _decide(self, result: AttemptResult, now: int) -> Decision:
        job = result.job
        return decide(
            outcome_of(result),
            attempts_made=job.attempt_number,
            schedule=job.retry_schedule
            if job.retry_schedule is not None
            else self._settings.retry_schedule,
            jitter=self._settings.retry_jitter,
            now_ms=now,
            rng=self._rng,
            retries_allowed=job.kind == "event",
        )

    async def _record_pausing(
        self, results: Sequence[AttemptResult], decided: Sequence[Decision], now: int
    ) -> tuple[_Recorded, dict[str, str]]:
        """`record` for a batch that pauses a webhook, through an ORM session: returns what
        `_record_rows` does and the paused webhooks' reasons."""
        async with self._db.transaction() as s:
            hooks = await webhook_store.by_ids(s, {r.job.webhook_id for r in results})
            owners = await delivery_store.lease_owners(s, {r.job.delivery_id for r in results})
            walk = _walk(results, decided, owners, hooks, now, self._settings.auto_pause_after)
            for webhook_id, streak in walk.streaks.items():
                hooks[webhook_id].failure_streak = streak
            for webhook_id, reason in walk.pauses.items():
                _pause(hooks[webhook_id], reason, now)
            if walk.attempts:
                await s.execute(insert(Attempt), walk.attempts)
            if walk.changes:
                # The ORM's bulk update by primary key wants the id under its column's name.
                updates = [
                    {("id" if k == "delivery_id" else k): v for k, v in change.items()}
                    for change in walk.changes
                ]
                await s.execute(update(Delivery), updates)
            await s.flush()
            for webhook_id in walk.pauses:
                await delivery_store.hold_active(s, webhook_id)
                if self.paused_hook is not None:
                    await self.paused_hook(s, hooks[webhook_id])
        reasons = {w: hooks[w].paused_reason or "" for w in walk.pauses}
        return (walk.decisions, walk.logged), reasons

    def _host(self, job: Job) -> str | None:
        if job.type == "email":
            return self._smtp.host
        host = self._hosts.get(job.url, "")
        if host == "":
            if len(self._hosts) >= HOST_CACHE_SIZE:
                self._hosts.clear()
            host = self._hosts[job.url] = urlsplit(job.url).hostname
        return host

    def _log_attempt(self, result: AttemptResult, decision: Decision | None) -> None:
        job = result.job
        status = result.response.status if result.response else None
        verdict = decision.verdict.value if decision else "superseded"
        extra = ""
        if decision is not None and decision.next_attempt_at is not None:
            extra = f" retry_in_s={(decision.next_attempt_at - self._clock()) / 1000:.1f}"
        if result.error:
            extra += f" error={result.error!r}"
        log.info(
            "webhook attempt delivery=%s webhook=%s topic=%s kind=%s attempt=%d host=%s "
            "status=%s duration_ms=%.1f result=%s%s",
            job.delivery_id,
            job.webhook_id,
            job.topic,
            job.kind,
            job.attempt_number,
            self._host(job),
            status if status is not None else "-",
            result.duration_ms,
            verdict,
            extra,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class _Sending:
    """What a claim's jobs of one webhook share: its row, decrypted secrets and tuning."""

    webhook: Any
    secrets: tuple[str, ...]
    authorization: str | None
    tuned: tuning.Tuning
    limits: Limits


# What recording a batch returns: a decision per result (None: not this worker's to make), and
# the results to log with their decisions once committed.
_Recorded = tuple[list[Decision | None], list[tuple[AttemptResult, Decision | None]]]


def _claim_rows(
    connection: Connection,
    *,
    token: str,
    now: int,
    lease_ms: int,
    limit: int,
    exclude: list[str],
    lease_for: Callable[[Any], int],
) -> tuple[list[Any], dict[str, Any], dict[str, Any], int | None]:
    """A claim in one write transaction (on SQLite, on the store's writer thread: nothing here
    touches the event loop): the claimed rows, their events and webhooks by id, and when the
    claim comes back short the next time something may be due. A webhook whose attempts may
    outlast `lease_ms` (`lease_for` its row) gets its deliveries' leases lengthened."""
    claimed = delivery_store.claim_sync(
        connection, token=token, now=now, lease_ms=lease_ms, limit=limit, exclude_webhooks=exclude
    )
    due = delivery_store.next_due_sync(connection, now) if len(claimed) < limit else None
    if not claimed:
        return [], {}, {}, due
    event_ids = [d.event_id for d in claimed if d.event_id]
    events = event_store.by_ids(connection, event_ids, EventRecord.fields()) if event_ids else {}
    hooks = webhook_store.for_sending(connection, {d.webhook_id for d in claimed})
    leases = {webhook_id: lease_for(row) for webhook_id, row in hooks.items()}
    longer = {d.id: now + leases[d.webhook_id] for d in claimed if leases[d.webhook_id] > lease_ms}
    delivery_store.extend_leases(connection, token, longer)
    return claimed, events, hooks, due


def _record_rows(
    connection: Connection,
    results: Sequence[AttemptResult],
    decided: Sequence[Decision],
    now: int,
    auto_pause_after: int,
) -> _Recorded | None:
    """Record a batch of results in one write transaction with Core statements: attempts and
    deliveries by `executemany`, the webhooks' failure streaks. None, having written nothing,
    when the batch pauses a webhook (`record` then takes the ORM path)."""
    # The webhooks' rows are locked first, then the deliveries', as pause and resume write them.
    hooks = webhook_store.streaks(connection, {r.job.webhook_id for r in results})
    owners = delivery_store.lease_owners_sync(connection, {r.job.delivery_id for r in results})
    walk = _walk(results, decided, owners, hooks, now, auto_pause_after)
    if walk.pauses:
        return None
    if walk.attempts:
        connection.execute(delivery_store.INSERT_ATTEMPTS, walk.attempts)
    delivery_store.record_results(connection, walk.changes)
    webhook_store.set_streaks(connection, walk.streaks)
    return walk.decisions, walk.logged


@dataclasses.dataclass(slots=True)
class _Walk:
    """What a batch of results comes to, before anything is written."""

    # A decision per result; None where it is not this worker's to make.
    decisions: list[Decision | None] = dataclasses.field(default_factory=list)
    # The results to log once committed, with their decisions.
    logged: list[tuple[AttemptResult, Decision | None]] = dataclasses.field(default_factory=list)
    # Attempt rows (`_attempt_row`) and delivery changes (`_delivery_change`).
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    changes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # Webhooks whose failure streak changed, with the new streak.
    streaks: dict[str, int] = dataclasses.field(default_factory=dict)
    # Webhooks this batch pauses, with the reason.
    pauses: dict[str, str] = dataclasses.field(default_factory=dict)


def _walk(
    results: Sequence[AttemptResult],
    decided: Sequence[Decision],
    owners: Mapping[str, str | None],
    hooks: Mapping[str, Any],
    now: int,
    auto_pause_after: int,
) -> _Walk:
    """Decide what a batch of results writes, from the deliveries' lease owners and the
    webhooks' `state` and `failure_streak` (rows or ORM objects, only read). A webhook paused
    by an earlier result of the batch holds the later ones' retries."""
    walk = _Walk()
    state = {w: (hook.state, hook.failure_streak) for w, hook in hooks.items()}
    for result, decision in zip(results, decided, strict=True):
        job = result.job
        owner = owners.get(job.delivery_id, _GONE)
        if owner is _GONE:  # the webhook was removed meanwhile
            walk.decisions.append(None)
            continue
        walk.attempts.append(_attempt_row(result))
        if owner != job.lease_token:
            # Our lease ran out and another worker took the delivery (it decides), or a resume
            # skipped the delivery while it was in flight (`skip_held`).
            walk.decisions.append(None)
            walk.logged.append((result, None))
            continue
        walk.decisions.append(decision)
        known = job.webhook_id in state
        hook_state, streak = state.get(job.webhook_id, ("", 0))
        paused = hook_state == "paused"
        walk.changes.append(_delivery_change(result, decision, now, paused=paused))
        walk.logged.append((result, decision))
        if not known:
            continue
        if job.kind == "event" and decision.verdict in (Verdict.SUCCEEDED, Verdict.FAILED):
            streak = 0 if decision.verdict == Verdict.SUCCEEDED else streak + 1
            walk.streaks[job.webhook_id] = streak
            if auto_pause_after and streak >= auto_pause_after and not paused:
                walk.pauses[job.webhook_id] = f"paused after {streak} consecutive failed deliveries"
                hook_state = "paused"
        if decision.pause and hook_state != "paused":
            walk.pauses[job.webhook_id] = "the endpoint answered 410 Gone"
            hook_state = "paused"
        state[job.webhook_id] = (hook_state, streak)
    walk.streaks = {w: n for w, n in walk.streaks.items() if n != hooks[w].failure_streak}
    return walk


_GONE = object()


def _attempt_row(result: AttemptResult) -> dict[str, Any]:
    job = result.job
    response = result.response
    return {
        "id": result.attempt_id,
        "delivery_id": job.delivery_id,
        "created_at": result.started_at,
        "duration_ms": round(result.duration_ms, 3),
        "number": job.attempt_number,
        "request_url": job.url,
        "request_headers": result.request_headers,
        "request_body": result.request_body,
        "response_status": response.status if response else None,
        "response_headers": response.headers if response else None,
        "response_body": response.body if response else None,
        "error": result.error,
    }


def _delivery_change(
    result: AttemptResult, decision: Decision, now: int, *, paused: bool
) -> dict[str, Any]:
    """The delivery's new columns (`delivery_store.RESULT_COLUMNS`, keyed by `delivery_id`);
    `paused`: its webhook is paused, so a retry waits as `held`."""
    response = result.response
    change: dict[str, Any] = {
        "delivery_id": result.job.delivery_id,
        "attempt_count": result.job.attempt_number,
        "last_response_status": response.status if response else None,
        "last_error": None if decision.verdict == Verdict.SUCCEEDED else decision.reason[:2000],
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
        "next_attempt_at": None,
        "completed_at": now,
    }
    if decision.verdict == Verdict.SUCCEEDED:
        change["status"] = "succeeded"
    elif decision.verdict == Verdict.RETRY:
        change["status"] = "held" if paused else "retrying"
        change["next_attempt_at"] = decision.next_attempt_at
        change["completed_at"] = None
    else:
        change["status"] = "failed"
    return change


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of `waits` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _pause(webhook: Webhook, reason: str, now: int) -> None:
    webhook.state = "paused"
    webhook.paused_reason = reason
    webhook.paused_at = now
    webhook.updated_at = now
