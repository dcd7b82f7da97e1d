import itertools

from sftphook.events import EventRecord, Topic
from tests.api.conftest import assert_problem

_clock = itertools.count(1_700_000_000_000)


async def _record(app, organization_id, topic=Topic.FILE_CREATED, path="a.txt", **fields):
    event = EventRecord(
        organization_id=organization_id,
        topic=topic,
        actor_id=fields.pop("actor_id", "acme"),
        path=path,
        created_at=fields.pop("created_at", next(_clock)),
        **fields,
    )
    await app.recorder.record(event)
    return event


async def test_event_fields_are_returned_as_documented(alpha, http_app):
    event = await _record(
        http_app,
        alpha.organization_id,
        Topic.FILE_DOWNLOADED,
        "inbound/invoice 2026+1.csv",
        size=357464,
        sha256="ab" * 32,
        protocol="SFTP",
        client_ip="127.0.0.1",
        session_id="s-1",
    )
    resp = await alpha.client.get("/api/v1/events")
    assert resp.status_code == 200
    page = resp.json()
    assert page["next"] is None and page["next_cursor"] is None
    assert page["data"] == [
        {
            "id": event.id,
            "topic": "file.downloaded",
            "created_at": event.created_at,
            "actor": {"type": "User", "id": "acme"},
            "path": "inbound/invoice 2026+1.csv",
            "previous_path": None,
            "size": 357464,
            "sha256": "ab" * 32,
            "protocol": "SFTP",
            "client_ip": "127.0.0.1",
            "session_id": "s-1",
        }
    ]
    one = await alpha.client.get(f"/api/v1/events/{event.id}")
    assert one.status_code == 200 and one.json() == page["data"][0]


async def test_events_page_newest_first_through_next_links(alpha, http_app):
    recorded = [await _record(http_app, alpha.organization_id, path=f"f{i}.txt") for i in range(7)]
    # Two events in the same millisecond must still each appear exactly once.
    same_ms = recorded[-1].created_at
    recorded.append(await _record(http_app, alpha.organization_id, path="tie", created_at=same_ms))
    expected = [e.id for e in sorted(recorded, key=lambda e: (e.created_at, e.id), reverse=True)]

    seen: list[str] = []
    url = "/api/v1/events?limit=3"
    pages = 0
    while url:
        resp = await alpha.client.get(url)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert len(page["data"]) <= 3
        seen += [e["id"] for e in page["data"]]
        if page["next"]:
            assert resp.headers["link"] == f'<{page["next"]}>; rel="next"'
            assert f"cursor={page['next_cursor']}" in page["next"]
        url = page["next"]
        pages += 1
    assert seen == expected and pages == 3


async def test_events_filter_by_topic_and_path_prefix(alpha, http_app):
    org = alpha.organization_id
    await _record(http_app, org, Topic.FILE_CREATED, "inbound/a.csv")
    await _record(http_app, org, Topic.FILE_DELETED, "inbound/b.csv")
    await _record(http_app, org, Topic.FILE_CREATED, "outbound/c.csv")
    await _record(http_app, org, Topic.FILE_CREATED, "inbound_x/d.csv")
    await _record(http_app, org, Topic.FILE_CREATED, "in%/e.csv")
    await _record(http_app, org, Topic.FILE_CREATED, "Inbound/F.csv")

    async def paths(query: str) -> list[str]:
        resp = await alpha.client.get(f"/api/v1/events?{query}")
        assert resp.status_code == 200, resp.text
        return [e["path"] for e in resp.json()["data"]]

    assert await paths("topic=file.created&path_prefix=inbound/") == ["inbound/a.csv"]
    assert await paths("path_prefix=/inbound/") == ["inbound/b.csv", "inbound/a.csv"]
    assert await paths("topic=file.deleted") == ["inbound/b.csv"]
    # LIKE wildcards in the prefix are literal characters.
    assert await paths("path_prefix=in%25") == ["in%/e.csv"]
    assert await paths("path_prefix=inbound_") == ["inbound_x/d.csv"]
    # Paths are compared as they are, on every database (SQLite's LIKE ignores ASCII case).
    assert await paths("path_prefix=Inbound/") == ["Inbound/F.csv"]
    assert await paths("path_prefix=INBOUND/") == []

    resp = await alpha.client.get("/api/v1/events?topic=file.created&limit=1")
    follow = await alpha.client.get(resp.json()["next"])
    assert [e["topic"] for e in follow.json()["data"]] == ["file.created"]


async def test_bad_event_queries_are_422(alpha):
    for query, field in [
        ("topic=file.exploded", "topic"),
        ("topic=webhook.ping", "topic"),  # a ping is a delivery, never an event
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=%25%25%25", "cursor"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("path_prefix=" + "a" * 5000, "path_prefix"),
    ]:
        body = assert_problem(await alpha.client.get(f"/api/v1/events?{query}"), 422)
        assert [e["field"] for e in body["errors"]] == [field], (query, body)
    assert_problem(await alpha.client.get("/api/v1/events/not-an-event"), 404)
