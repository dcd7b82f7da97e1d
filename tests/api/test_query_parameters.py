"""A query parameter a route does not take is a 422 that names it and the ones the route takes,
as an unknown body field is: a misspelt filter (`?topics=`, `?path-prefix=`) used to be ignored,
and the answer was the whole unfiltered list."""

from __future__ import annotations

from sftphook.app import App
from sftphook.events import EventRecord, Topic
from tests.api.conftest import Tenant, assert_problem


async def test_a_misspelt_filter_is_422_naming_it_and_the_accepted_ones(
    http_app: App, alpha: Tenant
) -> None:
    await http_app.recorder.record(
        EventRecord(
            organization_id=alpha.organization_id,
            topic=Topic.FILE_DELETED,
            actor_id="acme",
            path="outbound/old.csv",
        )
    )
    hook, _ = await http_app.webhooks.create(
        alpha.organization_id, nickname="q", url="http://127.0.0.1:9/h", topics=["file.created"]
    )
    for url, unknown, accepted in [
        ("/api/v1/events?topics=file.created", "topics", "topic, path_prefix, since"),
        ("/api/v1/events?path-prefix=inbound/", "path-prefix", "path_prefix"),
        ("/api/v1/audit?actions=webhook.created", "actions", "action, target_type"),
        (f"/api/v1/webhooks/{hook.id}/deliveries?statuses=failed", "statuses", "status, topic"),
    ]:
        body = assert_problem(await alpha.client.get(url), 422)
        assert [e["field"] for e in body["errors"]] == [unknown], body
        assert accepted in body["detail"], body["detail"]


async def test_a_route_without_query_parameters_refuses_any(alpha: Tenant) -> None:
    for method, url in [
        ("GET", "/api/v1/users?limit=5"),
        ("GET", "/api/v1/tokens?name=x"),
        ("POST", "/api/v1/tokens?name=x"),
    ]:
        resp = await alpha.client.request(method, url, json={"name": "x"})
        body = assert_problem(resp, 422)
        assert body["errors"][0]["field"] in ("limit", "name")
        assert "takes no query parameters" in body["detail"]
    # Nothing was created by the refused POST.
    assert [t["name"] for t in (await alpha.client.get("/api/v1/tokens")).json()["data"]] == [
        "tests"
    ]


async def test_every_documented_parameter_is_still_accepted(http_app: App, alpha: Tenant) -> None:
    hook, _ = await http_app.webhooks.create(
        alpha.organization_id, nickname="q", url="http://127.0.0.1:9/h", topics=["file.created"]
    )
    for url in [
        "/api/v1/events?topic=file.created&path_prefix=in/&since=0&until=1&limit=5",
        "/api/v1/audit?action=webhook.*&action=user.added&target_type=webhook&target_id=x"
        "&since=0&limit=5",
        f"/api/v1/webhooks/{hook.id}/deliveries?status=failed&status=held&topic=file.created"
        "&since=0&limit=5",
    ]:
        resp = await alpha.client.get(url)
        assert resp.status_code == 200, (url, resp.text)
