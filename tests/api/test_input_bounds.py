"""Times, cursors and numbers outside what the API accepts are a 422 problem that names the
parameter and the accepted range, on every route that takes them; never a 500, never a 200 with
an empty page."""

from __future__ import annotations

import base64

import pytest

from sftphook.app import App
from sftphook.epoch import MAX_EPOCH_MS
from sftphook.events import EventRecord, Topic
from tests.api.conftest import Tenant, assert_problem

RANGE = f"from 0 to {MAX_EPOCH_MS}"

OUT_OF_RANGE_TIMES = [
    "99999999999999999999",  # more than a 64-bit integer holds
    str(MAX_EPOCH_MS + 1),  # the year 10000
    "9" * 5000,  # more digits than int() converts
    "-1",
    "-99999999999999999999",
    "²",  # a digit to str.isdigit(), not to int()
    "1e30",
    "1969-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",  # the year 10000 in UTC
    "10000-01-01T00:00:00Z",
    "yesterday",
]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def _webhook_id(app: App, tenant: Tenant) -> str:
    view, _ = await app.webhooks.create(
        tenant.organization_id,
        nickname="bounds",
        url="http://127.0.0.1:9/hook",
        topics=["file.created"],
    )
    return view.id


def _assert_names(resp, field: str, *words: str) -> None:
    body = assert_problem(resp, 422)
    assert [e["field"] for e in body["errors"]] == [field], body
    for word in words:
        assert word in body["detail"], (word, body["detail"])


@pytest.mark.parametrize("field", ["since", "until"])
async def test_times_out_of_range_are_422_naming_the_parameter_and_range(
    http_app: App, alpha: Tenant, field: str
) -> None:
    hook = await _webhook_id(http_app, alpha)
    for path in ("/api/v1/events", "/api/v1/audit", f"/api/v1/webhooks/{hook}/deliveries"):
        for value in OUT_OF_RANGE_TIMES:
            resp = await alpha.client.get(path, params={field: value})
            _assert_names(resp, field, RANGE, "9999-12-31T23:59:59.999Z")


@pytest.mark.parametrize("field", ["since", "until"])
async def test_redeliver_times_out_of_range_are_422(
    http_app: App, alpha: Tenant, field: str
) -> None:
    hook = await _webhook_id(http_app, alpha)
    url = f"/api/v1/webhooks/{hook}/deliveries/redeliver"
    for value in [*OUT_OF_RANGE_TIMES, -1, MAX_EPOCH_MS + 1, 10**30]:
        resp = await alpha.client.post(url, json={field: value})
        _assert_names(resp, field, RANGE)


async def test_times_at_the_edges_of_the_range_are_accepted(http_app: App, alpha: Tenant) -> None:
    hook = await _webhook_id(http_app, alpha)
    for path in ("/api/v1/events", "/api/v1/audit", f"/api/v1/webhooks/{hook}/deliveries"):
        for since, until in [
            ("0", str(MAX_EPOCH_MS)),
            ("1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"),
            ("1970-01-01T01:00:00+01:00", "9999-12-31"),
        ]:
            resp = await alpha.client.get(path, params={"since": since, "until": until})
            assert resp.status_code == 200, (path, since, until, resp.text)


async def test_since_not_before_until_is_422(http_app: App, alpha: Tenant) -> None:
    hook = await _webhook_id(http_app, alpha)
    for path in ("/api/v1/events", "/api/v1/audit", f"/api/v1/webhooks/{hook}/deliveries"):
        resp = await alpha.client.get(path, params={"since": 20, "until": 20})
        _assert_names(resp, "since", "earlier than until")
    resp = await alpha.client.post(
        f"/api/v1/webhooks/{hook}/deliveries/redeliver", json={"since": 20, "until": 10}
    )
    _assert_names(resp, "since", "earlier than until")


async def test_cursors_with_times_out_of_range_are_422(http_app: App, alpha: Tenant) -> None:
    """A cursor holds the time of the last row of a page: one this API never gave out, with a
    time no database integer holds, used to be a 500 or an empty page."""
    hook = await _webhook_id(http_app, alpha)
    for number in ["99999999999999999999", str(MAX_EPOCH_MS + 1), "-5", "²", "9" * 100]:
        for path, cursor in [
            ("/api/v1/events", _b64(f"{number}:some-id")),
            ("/api/v1/audit", _b64(f"{number}:some-id")),
            (f"/api/v1/webhooks/{hook}/deliveries", f"{number}_some-id"),
        ]:
            resp = await alpha.client.get(path, params={"cursor": cursor})
            _assert_names(resp, "cursor", "cursor is not one this API gave out")


async def test_limits_name_their_accepted_range(http_app: App, alpha: Tenant) -> None:
    hook = await _webhook_id(http_app, alpha)
    for path, maximum in [
        ("/api/v1/events", 500),
        ("/api/v1/audit", 500),
        (f"/api/v1/webhooks/{hook}/deliveries", 200),
    ]:
        for value in ["0", "-1", str(maximum + 1), "99999999999999999999", "ten", "1.5"]:
            resp = await alpha.client.get(path, params={"limit": value})
            _assert_names(resp, "limit", f"limit: must be an integer from 1 to {maximum}")


async def test_body_numbers_name_their_accepted_range(http_app: App, alpha: Tenant) -> None:
    hook = await _webhook_id(http_app, alpha)
    for body, field, words in [
        ({"timeout": 10**30}, "timeout", "must be a number from 0.1 to 300"),
        ({"timeout": -1}, "timeout", "must be a number from 0.1 to 300"),
        ({"max_concurrency": 10**20}, "max_concurrency", "must be an integer from 1 to 1000"),
        ({"max_concurrency": "many"}, "max_concurrency", "must be an integer from 1 to 1000"),
        ({"rate_limit": 0}, "rate_limit", "must be a number from 0.1 to 10000"),
    ]:
        resp = await alpha.client.patch(f"/api/v1/webhooks/{hook}", json=body)
        _assert_names(resp, field, words)
    resp = await alpha.client.post(
        f"/api/v1/webhooks/{hook}/rotate-secret", json={"grace_seconds": 10**12}
    )
    _assert_names(resp, "grace_seconds", "must be a number from 0 to 604800")


async def test_events_filter_by_time(http_app: App, alpha: Tenant) -> None:
    """`since` ≤ created_at < `until`, in epoch ms or ISO 8601, kept in the `next` links."""
    times = [1_700_000_000_000 + i * 1000 for i in range(5)]
    for i, created_at in enumerate(times):
        await http_app.recorder.record(
            EventRecord(
                organization_id=alpha.organization_id,
                topic=Topic.FILE_CREATED,
                actor_id="acme",
                path=f"f{i}.txt",
                created_at=created_at,
            )
        )

    async def paths(url: str) -> list[str]:
        seen: list[str] = []
        next_url: str | None = url
        while next_url:
            resp = await alpha.client.get(next_url)
            assert resp.status_code == 200, resp.text
            seen += [e["path"] for e in resp.json()["data"]]
            next_url = resp.json()["next"]
        return seen

    assert await paths(f"/api/v1/events?since={times[1]}&until={times[4]}") == [
        "f3.txt",
        "f2.txt",
        "f1.txt",
    ]
    # 1_700_000_002_000 is 2023-11-14T22:13:22Z; pages of one keep the bounds.
    assert await paths("/api/v1/events?since=2023-11-14T22:13:22Z&limit=1") == [
        "f4.txt",
        "f3.txt",
        "f2.txt",
    ]
    assert await paths(f"/api/v1/events?until={times[0]}") == []
