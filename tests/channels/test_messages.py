"""What notifications say, and the Slack and Teams shapes, checked by a real HTTP receiver."""

from __future__ import annotations

import dataclasses
import json

import aiohttp
import pytest
from aiohttp import web

from sftphook.channels import describe_event, describe_ping, slack_body, teams_body
from sftphook.channels.messages import human_size
from sftphook.events import EventRecord, Topic
from tests.support.teams import read_card

UPLOAD = EventRecord(
    organization_id="org",
    topic=Topic.FILE_CREATED,
    actor_id="partner-acme",
    path="inbound/invoice 2026.csv",
    size=357464,
    created_at=1591106805970,
    client_ip="203.0.113.7",
)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (1, "1 byte"), (357464, "349 KB"), (5 * 1024**2 + 1, "5.0 MB")],
)
def test_sizes_read_like_a_file_manager(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("size", "fact"),
    [(1, "1 byte"), (10, "10 bytes"), (1023, "1023 bytes"), (1024, "1.0 KB (1,024 bytes)")],
)
def test_the_size_fact_says_each_figure_once(size, fact):
    notice = describe_event(dataclasses.replace(UPLOAD, size=size))
    assert dict(notice.facts)["Size"] == fact


def test_upload_sentence_names_actor_path_and_size():
    notice = describe_event(UPLOAD)
    assert notice.sentence == "partner-acme uploaded inbound/invoice 2026.csv (349 KB)"
    facts = dict(notice.facts)
    assert facts["Topic"] == "file.created"
    assert facts["Time"] == "2020-06-02 14:06:45 UTC"
    assert facts["Size"] == "349 KB (357,464 bytes)"


def test_directory_delete_and_rename_sentences():
    rm = EventRecord(organization_id="o", topic=Topic.FILE_DELETED, actor_id="a", path="old/")
    assert describe_event(rm).sentence == "a deleted the directory old/"
    mv = EventRecord(
        organization_id="o",
        topic=Topic.FILE_RENAMED,
        actor_id="a",
        path="b.txt",
        previous_path="a.txt",
    )
    assert describe_event(mv).sentence == "a renamed a.txt to b.txt"


class _Receiver:
    """A local incoming-webhook endpoint that checks what Slack and Teams require."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    async def slack(self, request: web.Request) -> web.Response:
        body = await request.json()
        ok = (
            request.content_type == "application/json"
            and isinstance(body.get("text"), str)
            and all(b["type"] in ("section", "context") for b in body["blocks"])
            and all(len(b.get("fields", [])) <= 10 for b in body["blocks"])
            # Slack's limits: a section's text, 3000 characters; each of its fields, 2000.
            and all(len(b.get("text", {}).get("text", "")) <= 3000 for b in body["blocks"])
            and all(len(f["text"]) <= 2000 for b in body["blocks"] for f in b.get("fields", []))
        )
        self.bodies.append(body)
        return web.Response(text="ok" if ok else "invalid_blocks", status=200 if ok else 400)

    async def teams(self, request: web.Request) -> web.Response:
        body = await request.json()
        attachment = body["attachments"][0]
        card = attachment["content"]
        ok = (
            body["type"] == "message"
            and attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
            and card["type"] == "AdaptiveCard"
            and card["body"][0]["type"] == "RichTextBlock"
        )
        self.bodies.append(body)
        return web.Response(text="1" if ok else "bad card", status=200 if ok else 400)


@pytest.fixture
async def receiver():
    recv = _Receiver()
    app = web.Application()
    app.router.add_post("/slack", recv.slack)
    app.router.add_post("/teams", recv.teams)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield recv, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _post(url: str, body: bytes) -> int:
    async with aiohttp.ClientSession() as client:
        headers = {"Content-Type": "application/json"}
        async with client.post(url, data=body, headers=headers) as resp:
            return resp.status


async def test_slack_message_is_accepted_and_readable(receiver):
    recv, base = receiver
    assert await _post(f"{base}/slack", slack_body(describe_event(UPLOAD))) == 200
    body = recv.bodies[0]
    assert body["text"] == "partner-acme uploaded inbound/invoice 2026.csv (349 KB)"
    assert body["blocks"][0]["text"]["text"].startswith("*partner-acme* uploaded")
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert "*Path*\ninbound/invoice 2026.csv" in fields


async def test_slack_takes_a_message_about_long_paths(receiver):
    """Names of 255 characters nest deep; escaped (`&` is five characters) they can exceed
    what Slack takes in a section or a field, which it refuses with a 400."""
    recv, base = receiver
    deep = "/".join(["&" * 250] * 8)
    moved = EventRecord(
        organization_id="o",
        topic=Topic.FILE_RENAMED,
        actor_id="u",
        path=deep + "/b.csv",
        previous_path=deep + "/a.csv",
    )
    assert await _post(f"{base}/slack", slack_body(describe_event(moved))) == 200
    body = recv.bodies[0]
    headline = body["blocks"][0]["text"]["text"]
    assert headline.startswith("*u* renamed &amp;&amp;") and headline.endswith("&amp;…")
    fields = {f["text"].split("\n")[0]: f["text"] for f in body["blocks"][1]["fields"]}
    assert fields["*Path*"].endswith("&amp;…") and fields["*Actor*"] == "*Actor*\nu (User)"


async def test_slack_escapes_control_characters():
    odd = EventRecord(
        organization_id="o", topic=Topic.FILE_DELETED, actor_id="u", path="a<b>&c.txt"
    )
    body = json.loads(slack_body(describe_event(odd)))
    assert "a&lt;b&gt;&amp;c.txt" in body["blocks"][0]["text"]["text"]


async def test_slack_notification_text_cannot_mention_or_link():
    """The top-level `text` (the notification, and the message where blocks are not drawn) is
    read as mrkdwn too: an uploader's file name must not ping the channel or make a link."""
    odd = EventRecord(
        organization_id="o",
        topic=Topic.FILE_CREATED,
        actor_id="u",
        path="in/<!channel> <https:evil.example|invoice.pdf> & co.csv",
        size=1,
    )
    body = json.loads(slack_body(describe_event(odd)))
    assert body["text"] == (
        "u uploaded in/&lt;!channel&gt; &lt;https:evil.example|invoice.pdf&gt; &amp; co.csv"
        " (1 byte)"
    )
    assert "<" not in json.dumps(body)


async def test_teams_card_is_accepted_and_carries_the_facts(receiver):
    recv, base = receiver
    assert await _post(f"{base}/teams", teams_body(describe_event(UPLOAD))) == 200
    card = recv.bodies[0]["attachments"][0]["content"]
    headline, facts = read_card(card)
    assert headline == "partner-acme uploaded inbound/invoice 2026.csv (349 KB)"
    assert facts["Actor"] == "partner-acme (User)"
    assert facts["Path"] == "inbound/invoice 2026.csv"


def test_teams_card_shows_a_file_name_as_written_never_as_markdown():
    # Teams reads a TextBlock's and a fact set's text as Markdown: this name would be a link.
    name = "inbound/[invoice](https://pay.example.com) **urgent** _x_.pdf"
    odd = EventRecord(organization_id="o", topic=Topic.FILE_DELETED, actor_id="u", path=name)
    card = json.loads(teams_body(describe_event(odd)))["attachments"][0]["content"]
    headline, facts = read_card(card)
    assert headline == f"u deleted {name}"
    assert facts["Path"] == name


async def test_ping_notices_reach_both(receiver):
    recv, base = receiver
    notice = describe_ping("Ops channel", 1591106805970, "admin")
    assert await _post(f"{base}/slack", slack_body(notice)) == 200
    assert await _post(f"{base}/teams", teams_body(notice)) == 200
    assert "Ops channel" in recv.bodies[0]["text"]
