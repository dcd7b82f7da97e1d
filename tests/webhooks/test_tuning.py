"""Per-webhook tuning: the rules (bounds, the token bucket, the throttle) with the time passed
in, and the engine honouring them against a real receiver, measured where requests arrive."""

from __future__ import annotations

import asyncio
import bisect
import json
from typing import Any

import pytest
from aiohttp import web

from sftphook.config import Settings
from sftphook.errors import InvalidInput
from sftphook.webhooks import tuning
from sftphook.webhooks.throttle import Admission, Limits, Throttle, TokenBucket
from tests.conftest import serving
from tests.webhooks.conftest import Receiver, file_event, org_id, wait_until

WORKER = frozenset({"worker"})


# The rules


def test_bucket_spaces_starts_one_over_rate_apart():
    bucket = TokenBucket(20, now=0.0)
    assert bucket.take(0.0) and not bucket.take(0.0)
    assert bucket.ready_at(0.0) == pytest.approx(0.05)
    assert not bucket.take(0.049) and bucket.take(0.05)
    # A long pause does not bank more than one token.
    assert bucket.take(10.0) and not bucket.take(10.0)


def test_throttle_never_starts_more_than_rate_plus_one_in_any_second():
    throttle: Throttle[int] = Throttle(max_hold_seconds=30)
    limits = Limits(rate_limit=20)
    starts: list[float] = []
    pending = list(range(300))
    now = 0.0
    while pending or throttle.held:
        # Offer as the engine would (it leaves a busy webhook out of claims), then pump.
        while pending and "hook" not in throttle.busy():
            job = pending.pop(0)
            if throttle.offer("hook", limits, job, now) is Admission.START:
                starts.append(now)
                assert throttle.finished("hook", job)
        started, back = throttle.ready(now)
        assert back == []
        for job in started:
            starts.append(now)
            assert throttle.finished("hook", job)
        now += 0.003
    assert len(starts) == 300
    assert _busiest_second(starts) <= 21
    # Never faster than the rate; a late tick loses at most its lateness.
    assert 299 / 20 <= starts[-1] <= 299 / 20 + 300 * 0.003


def test_throttle_holds_a_few_gives_back_the_rest_and_keeps_the_webhook_out_of_claims():
    throttle: Throttle[str] = Throttle(max_hold_seconds=5)
    limits = Limits(max_concurrency=2)
    jobs = [f"job{i}" for i in range(8)]
    answers = [throttle.offer("a", limits, job, 0.0) for job in jobs]
    assert answers == [Admission.START] * 2 + [Admission.HOLD] * 4 + [Admission.GIVE_BACK] * 2
    assert throttle.busy() == {"a"}
    # Another webhook is not affected.
    assert throttle.offer("b", limits, "other", 0.0) is Admission.START
    assert throttle.ready(0.1) == ([], [])
    assert not throttle.finished("a", "not started here")
    assert throttle.finished("a", jobs[0])
    assert throttle.ready(0.2) == (["job2"], [])
    # Held past the limit (their leases would run out): given back, in order.
    assert throttle.ready(6.0) == ([], ["job3", "job4", "job5"])
    assert throttle.drain() == []


def test_unlimited_webhooks_are_not_tracked():
    throttle: Throttle[int] = Throttle(max_hold_seconds=5)
    assert all(throttle.offer("x", Limits(), i, 0.0) is Admission.START for i in range(100))
    assert throttle.busy() == set() and throttle.next_ready_at(0.0) is None


def test_jobs_started_before_a_limit_was_set_do_not_count_against_it():
    throttle: Throttle[object] = Throttle(max_hold_seconds=5)
    before = object()
    assert throttle.offer("x", Limits(), before, 0.0) is Admission.START
    limited = Limits(max_concurrency=1)
    first, second = object(), object()
    assert throttle.offer("x", limited, first, 0.0) is Admission.START
    assert not throttle.finished("x", before)  # not counted, so it frees nothing
    assert throttle.offer("x", limited, second, 0.0) is Admission.HOLD
    assert throttle.finished("x", first)
    assert throttle.ready(0.1) == ([second], [])


def test_tuning_merge_checks_bounds_and_none_returns_to_the_default():
    stored = tuning.merge({}, {"timeout": 3, "rate_limit": 5, "retry_schedule": [1, 2.5]})
    assert stored == {"timeout": 3.0, "rate_limit": 5.0, "retry_schedule": [1.0, 2.5]}
    reset = tuning.merge(stored, {"timeout": None})
    assert reset == {"rate_limit": 5.0, "retry_schedule": [1, 2.5]}
    defaults = Settings().webhooks
    effective = tuning.effective({"max_concurrency": 4}, defaults)
    assert effective.max_concurrency == 4 and effective.timeout == defaults.timeout
    assert not effective.timeout_overridden and effective.rate_limit is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timeout", 0),
        ("timeout", 301),
        ("timeout", "5"),
        ("timeout", True),
        ("max_concurrency", 0),
        ("max_concurrency", 1.5),
        ("max_concurrency", 1001),
        ("rate_limit", 0),
        ("rate_limit", 0.01),
        ("rate_limit", float("inf")),
        ("retry_schedule", [-1]),
        ("retry_schedule", [1] * 21),
        ("retry_schedule", [8 * 86400]),
        ("retry_schedule", "5,10"),
        ("colour", 1),
    ],
)
def test_out_of_range_tuning_is_refused_naming_the_field(name, value):
    with pytest.raises(InvalidInput) as caught:
        tuning.merge({}, {name: value})
    assert caught.value.field == name


def test_schedule_text_reads_units():
    assert tuning.parse_schedule_text("5, 5m; 2h,") == [5.0, 300.0, 7200.0]
    assert tuning.parse_schedule_text(" ") == []
    assert tuning.parse_schedule_text("None") == []
    with pytest.raises(InvalidInput):
        tuning.parse_schedule_text("5, soon")


# The engine, measured at the receiver


def _busiest_second(times: list[float]) -> int:
    """The most arrivals in any one-second window [t, t + 1), t being an arrival."""
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered))


async def _statuses(app: Any, org: str, hook_id: str) -> list[str]:
    rows, _ = await app.webhooks.list_deliveries(org, hook_id, limit=200)
    return [r.status for r in rows]


async def test_rate_limit_holds_under_a_burst(settings, receiver: Receiver):
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org,
            nickname="slow receiver",
            url=receiver.url,
            topics=["file.created"],
            settings={"rate_limit": 20},
        )
        assert hook.rate_limit == 20
        # A burst: recorded together, committed in one go.
        await asyncio.gather(
            *(app.recorder.record(file_event(org, path=f"burst/{i}.csv")) for i in range(60))
        )
        arrivals = [r.at for r in await receiver.wait_for(60, within=30)]
        assert _busiest_second(arrivals) <= 20 + 1  # the limit plus the bucket's one token

        async def all_succeeded() -> bool:
            return await _statuses(app, org, hook.id) == ["succeeded"] * 60

        await wait_until(all_succeeded)
        # Each event went once: held jobs given back and claimed again were not sent twice.
        assert len({json.loads(r.body)["Id"] for r in receiver.requests}) == 60


async def test_a_rate_limited_webhook_does_not_hold_up_the_others(settings, receiver: Receiver):
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        await app.webhooks.create(
            org,
            nickname="slow receiver",
            url=receiver.url + "/limited",
            topics=["file.created"],
            settings={"rate_limit": 2},
        )
        await app.webhooks.create(
            org, nickname="fast receiver", url=receiver.url + "/free", topics=["file.created"]
        )
        await asyncio.gather(
            *(app.recorder.record(file_event(org, path=f"b/{i}.csv")) for i in range(20))
        )

        def arrived(path: str) -> list[float]:
            return [r.at for r in receiver.requests if r.path.endswith(path)]

        await wait_until(_async(lambda: len(arrived("/free")) == 20), within=20)
        # Every delivery of the unlimited webhook came while the limited one had sent a few.
        assert len(arrived("/limited")) < 10
        # …and the limited one keeps going at its pace.
        await wait_until(_async(lambda: len(arrived("/limited")) >= 6), within=30)


def _async(check: Any) -> Any:
    async def predicate() -> bool:
        return bool(check())

    return predicate


async def test_max_concurrency_is_never_exceeded(settings, receiver: Receiver):
    state = {"now": 0, "most": 0}

    async def slow(request: web.Request, received: Any) -> web.Response:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        try:
            await asyncio.sleep(0.1)
        finally:
            state["now"] -= 1
        return web.Response(text="ok")

    receiver.behaviour = slow
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org,
            nickname="two at a time",
            url=receiver.url,
            topics=["file.created"],
            settings={"max_concurrency": 2},
        )
        await asyncio.gather(
            *(app.recorder.record(file_event(org, path=f"c/{i}.csv")) for i in range(16))
        )
        await receiver.wait_for(16, within=30)

        async def done() -> bool:
            return await _statuses(app, org, hook.id) == ["succeeded"] * 16

        await wait_until(done)
        assert state["most"] == 2


async def test_webhook_timeout_and_retry_schedule_are_its_own(settings, receiver: Receiver):
    async def too_slow(request: web.Request, received: Any) -> web.Response:
        await asyncio.sleep(1.5)
        return web.Response(text="late")

    receiver.behaviour = too_slow
    # The configured defaults (2 s timeout, three 0.2 s retries) would give four attempts.
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org,
            nickname="tuned",
            url=receiver.url,
            topics=["file.created"],
            settings={"timeout": 0.3, "retry_schedule": [0.6]},
        )
        await app.recorder.record(file_event(org))

        async def failed() -> bool:
            return await _statuses(app, org, hook.id) == ["failed"]

        await wait_until(failed)
        rows, _ = await app.webhooks.list_deliveries(org, hook.id)
        _, attempts = await app.webhooks.get_delivery(org, rows[0].id)
        assert len(attempts) == 2
        assert all(a.error == "timed out after 0.3 s" for a in attempts)
        # The second try waited for the timeout, then the webhook's 0.6 s.
        first, second = receiver.requests
        assert second.at - first.at >= 0.85
        # Back to the defaults: the configured timeout and schedule apply again.
        view = await app.webhooks.update(
            org, hook.id, settings={"timeout": None, "retry_schedule": None}
        )
        assert view.timeout is None and view.retry_schedule is None
        assert app.webhooks.effective_tuning(view).timeout == settings.webhooks.timeout
