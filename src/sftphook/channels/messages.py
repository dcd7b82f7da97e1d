"""What a notification says, in words, whatever channel carries it."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sftphook.events.model import EventRecord, Topic


@dataclasses.dataclass(frozen=True)
class Notice:
    """A readable notification: a one-line sentence and the facts behind it."""

    topic: str
    sentence: str
    facts: tuple[tuple[str, str], ...]
    # The parts of the sentence, so that channels can style the actor and the path.
    actor: str
    action: str
    path: str | None


def human_size(size: int | None) -> str | None:
    """357464 → "349 KB" (1024-based, as file managers show it)."""
    if size is None:
        return None
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            if unit == "bytes":
                return f"{size} byte" + ("" if size == 1 else "s")
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
        value /= 1024
    return None  # unreachable


def format_time(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


_VERBS = {
    Topic.FILE_CREATED: "uploaded",
    Topic.FILE_DELETED: "deleted",
    Topic.FILE_DOWNLOADED: "downloaded",
    Topic.FILE_RENAMED: "renamed",
}


def describe_event(event: EventRecord) -> Notice:
    is_dir = event.path.endswith("/")
    verb = _VERBS[event.topic]
    if is_dir and event.topic == Topic.FILE_CREATED:
        verb = "created the directory"
    elif is_dir and event.topic == Topic.FILE_DELETED:
        verb = "deleted the directory"
    size = human_size(event.size) if not is_dir and event.topic != Topic.FILE_DELETED else None
    if event.topic == Topic.FILE_RENAMED and event.previous_path is not None:
        sentence = f"{event.actor_id} renamed {event.previous_path} to {event.path}"
    else:
        sentence = f"{event.actor_id} {verb} {event.path}" + (f" ({size})" if size else "")
    facts: list[tuple[str, str]] = [("Topic", str(event.topic)), ("Path", event.path)]
    if event.previous_path is not None:
        facts.append(("Previous path", event.previous_path))
    if size and event.size is not None:
        # Under 1 KiB the short form is already exact: "10 bytes", not "10 bytes (10 bytes)".
        exact = event.size < 1024
        facts.append(("Size", size if exact else f"{size} ({event.size:,} bytes)"))
    facts.append(("Actor", f"{event.actor_id} ({event.actor_type})"))
    facts.append(("Time", format_time(event.created_at)))
    if event.client_ip:
        facts.append(("Client IP", event.client_ip))
    return Notice(
        topic=str(event.topic),
        sentence=sentence,
        facts=tuple(facts),
        actor=event.actor_id,
        action=verb,
        path=event.path,
    )


def describe_ping(nickname: str, created_at: int, actor: str) -> Notice:
    return Notice(
        topic=str(Topic.WEBHOOK_PING),
        sentence=f"Test notification: the sftphook notification “{nickname}” reaches this channel",
        facts=(
            ("Topic", str(Topic.WEBHOOK_PING)),
            ("Notification", nickname),
            ("Sent by", actor),
            ("Time", format_time(created_at)),
        ),
        actor=actor,
        action="pinged",
        path=None,
    )
