"""The event: one thing that happened to a file, as every part of sftphook sees it."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Literal

from sftphook.store.ids import ordered_id
from sftphook.store.models import now_ms


class Topic(enum.StrEnum):
    FILE_CREATED = "file.created"
    FILE_DELETED = "file.deleted"
    FILE_DOWNLOADED = "file.downloaded"
    FILE_RENAMED = "file.renamed"
    WEBHOOK_PING = "webhook.ping"


FILE_TOPICS = frozenset(
    {Topic.FILE_CREATED, Topic.FILE_DELETED, Topic.FILE_DOWNLOADED, Topic.FILE_RENAMED}
)

# The topics an event can have, for a choice that users make (a ping is a delivery, no event).
FileTopicName = Literal["file.created", "file.deleted", "file.downloaded", "file.renamed"]


@dataclasses.dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as recorded. `path` is relative to the organization root, not encoded, with
    no leading "/"; a directory's path ends in "/"."""

    organization_id: str
    topic: Topic
    actor_id: str
    path: str
    actor_type: str = "User"
    previous_path: str | None = None
    size: int | None = None
    sha256: str | None = None
    protocol: str | None = None
    client_ip: str | None = None
    session_id: str | None = None
    id: str = dataclasses.field(default_factory=ordered_id)
    created_at: int = dataclasses.field(default_factory=now_ms)

    def __post_init__(self) -> None:
        if self.path.startswith("/"):
            raise ValueError(f"event path must be relative to the organization root: {self.path!r}")
        if self.topic not in FILE_TOPICS:
            raise ValueError(f"{self.topic!r} is not a file event topic")

    def as_row(self) -> dict[str, Any]:
        # Field by field: `dataclasses.asdict` deep-copies, ten times the cost for flat values.
        row = {name: getattr(self, name) for name in _FIELD_NAMES}
        row["topic"] = str(self.topic)
        return row

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The field names in order: a row with these columns unpacks into `cls(*row)`."""
        return _FIELD_NAMES

    @classmethod
    def from_row(cls, row: Any) -> EventRecord:
        """From a store `Event` (or anything with the same attributes)."""
        return cls(**{name: getattr(row, name) for name in _FIELD_NAMES})


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(EventRecord))
