import asyncio
import signal

from sftphook.events import EventRecord, Topic
from tests.cli.conftest import command


def _event(org_id: str, path: str, topic: Topic = Topic.FILE_CREATED, **fields) -> EventRecord:
    return EventRecord(organization_id=org_id, topic=topic, actor_id="acme", path=path, **fields)


async def test_events_list_newest_first_with_filters(cli, app):
    org = (await app.accounts.resolve_organization(None)).id
    await app.recorder.record(_event(org, "inbound/a.csv", size=10, created_at=1_000))
    await app.recorder.record(_event(org, "inbound/a.csv", Topic.FILE_DOWNLOADED, created_at=2_000))
    await app.recorder.record(
        _event(org, "archive/a.csv", Topic.FILE_RENAMED, previous_path="inbound/a.csv",
               created_at=3_000)
    )  # fmt: skip
    await app.recorder.record(_event(org, "tab\there", created_at=4_000))

    listed = await asyncio.to_thread(cli, "events", "list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split("\t") == ["time", "topic", "actor", "path", "previous_path", "size", "id"]
    cells = [row.split("\t") for row in rows]
    assert [c[3] for c in cells] == [
        "tab\\there",
        "archive/a.csv",
        "inbound/a.csv",
        "inbound/a.csv",
    ]
    assert cells[1][1:6] == ["file.renamed", "User:acme", "archive/a.csv", "inbound/a.csv", ""]
    assert cells[3][0] == "1970-01-01T00:00:01.000Z" and cells[3][5] == "10"

    filtered = await asyncio.to_thread(
        cli,
        "events",
        "list",
        "--topic",
        "file.created",
        "--path-prefix",
        "/inbound",
        "--limit",
        "5",
    )
    assert [r.split("\t")[3] for r in filtered.stdout.splitlines()[1:]] == ["inbound/a.csv"]
    bad = await asyncio.to_thread(cli, "events", "list", "--topic", "file.exploded")
    assert bad.returncode == 2
    # A ping is a delivery, never an event: no --topic can list one.
    ping = await asyncio.to_thread(cli, "events", "list", "--topic", "webhook.ping")
    assert ping.returncode == 2


async def test_follow_prints_each_new_event_once_and_ends_cleanly_on_ctrl_c(app, cli_env):
    org = (await app.accounts.resolve_organization(None)).id
    await app.recorder.record(_event(org, "old-1"))
    await app.recorder.record(_event(org, "old-2"))
    proc = await asyncio.create_subprocess_exec(
        *command("events", "list", "--follow", "--limit", "1"),
        env=cli_env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def line() -> list[str]:
            raw = await asyncio.wait_for(proc.stdout.readline(), 30)
            return raw.decode().rstrip("\n").split("\t")

        assert (await line())[0] == "time"
        assert (await line())[3] == "old-2"  # the newest of the past, then the new ones
        await app.recorder.record(_event(org, "new-1"))
        # An event stamped a little earlier but committed later is still shown.
        late = _event(org, "new-2-late", Topic.FILE_DELETED)
        late = EventRecord(**{**late.as_row(), "topic": Topic.FILE_DELETED,
                              "created_at": late.created_at - 5_000})  # fmt: skip
        await app.recorder.record(late)
        got = {tuple((await line())[1:4:2]) for _ in range(2)}
        assert got == {("file.created", "new-1"), ("file.deleted", "new-2-late")}
        await asyncio.sleep(1.5)  # a few polls: nothing is printed twice
        await app.recorder.record(_event(org, "new-3"))
        assert (await line())[3] == "new-3"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert out == b"" and b"Traceback" not in err, (out, err)
