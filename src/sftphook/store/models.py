"""The database tables of sftphook, as SQLAlchemy 2 typed models (SQLite and PostgreSQL alike).

Ids are UUID strings; times are Unix epoch milliseconds (what payloads carry), so no time zone
conversion happens anywhere between the store and the wire.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sftphook.store.ids import ordered_id


def new_id() -> str:
    """A random id from the system's generator, for the small tables (organizations, users,
    tokens, webhooks), made rarely; the append-only ones take `ids.ordered_id`."""
    return str(uuid.uuid4())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def password_salt(password_hash: str) -> str:
    """The salt of a stored password hash (`$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`, the PHC
    string format), or the whole value when it has no such form.

    It names one setting of a password: a new password gets a new random salt, and a rehash of
    the same password with today's parameters keeps it (`accounts.passwords.rehash`). So what a
    session was let in with is compared by salt, and a rehash at login ends no session.
    """
    parts = password_hash.split("$")
    return parts[-2] if len(parts) >= 5 and parts[0] == "" and parts[-2] else password_hash


class Base(DeclarativeBase):
    type_annotation_map = {int: BigInteger, dict[str, Any]: JSON, list[Any]: JSON}


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # Address that receives owner notices (auto-pause, secret rotation); optional.
    notice_email: Mapped[str | None] = mapped_column(String(320), default=None)
    created_at: Mapped[int] = mapped_column(default=now_ms)


class User(Base):
    """An SFTP login. Usernames are unique across organizations: a login names no organization."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    # OpenSSH authorized_keys lines, one per line.
    public_keys: Mapped[str] = mapped_column(Text, default="")
    # Home inside the organization root, always starting with "/" ("/" = the whole root).
    home: Mapped[str] = mapped_column(String(1024), default="/")
    # Comma-separated subset of read,write,delete,list.
    permissions: Mapped[str] = mapped_column(String(64), default="read,write,delete,list")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(default=now_ms)
    updated_at: Mapped[int] = mapped_column(default=now_ms, onupdate=now_ms)

    def session_access(self) -> tuple[object, ...]:
        """What an SFTP session was let in with and may do: a change to any of it (in this
        process, from the command line, or on another node) ends the user's open sessions."""
        return (
            self.id,
            self.organization_id,
            # By salt, not the whole hash: a rehash at login must not end the user's sessions.
            None if self.password_hash is None else password_salt(self.password_hash),
            self.public_keys,
            self.home,
            self.permissions,
        )


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    # SHA-256 hex of the whole token: tokens are long random strings, so a fast hash is enough.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, shown in lists so that an operator can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(default=now_ms)
    last_used_at: Mapped[int | None] = mapped_column(default=None)
    revoked_at: Mapped[int | None] = mapped_column(default=None)


class Admin(Base):
    """A dashboard account; separate from SFTP users."""

    __tablename__ = "admins"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[int] = mapped_column(default=now_ms)


class AdminMembership(Base):
    __tablename__ = "admin_memberships"

    admin_id: Mapped[str] = mapped_column(
        ForeignKey("admins.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_org_created", "organization_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=ordered_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(default=now_ms)
    actor_type: Mapped[str] = mapped_column(String(16), default="User")
    actor_id: Mapped[str] = mapped_column(String(128))
    # Relative to the organization root, no leading "/", not encoded; directories end in "/".
    path: Mapped[str] = mapped_column(String(4096))
    previous_path: Mapped[str | None] = mapped_column(String(4096), default=None)
    size: Mapped[int | None] = mapped_column(default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    protocol: Mapped[str | None] = mapped_column(String(16), default=None)
    client_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    session_id: Mapped[str | None] = mapped_column(String(64), default=None)


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    nickname: Mapped[str] = mapped_column(String(128))
    # webhook | slack | teams | email
    type: Mapped[str] = mapped_column(String(16), default="webhook")
    url: Mapped[str] = mapped_column(String(2048))
    # Encrypted at rest (webhooks.crypto.SecretBox); None when not set.
    authorization_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    topics: Mapped[list[Any]] = mapped_column(JSON)
    # A list of {"field", "operator", "value"} rules, AND-combined; empty = every event.
    filter: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ordered: Mapped[bool] = mapped_column(Boolean, default=False)
    # enabled | paused
    state: Mapped[str] = mapped_column(String(16), default="enabled")
    paused_reason: Mapped[str | None] = mapped_column(String(255), default=None)
    paused_at: Mapped[int | None] = mapped_column(default=None)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    previous_secret_expires_at: Mapped[int | None] = mapped_column(default=None)
    # Consecutive failed deliveries (pings and manual re-sends excluded); a success resets it.
    failure_streak: Mapped[int] = mapped_column(Integer, default=0)
    # Per-webhook overrides of the configured defaults; None = the default.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[int] = mapped_column(default=now_ms)
    updated_at: Mapped[int] = mapped_column(default=now_ms, onupdate=now_ms)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        # Workers claim by (status, next_attempt_at); the log lists by webhook, newest first.
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_webhook_created", "webhook_id", "created_at"),
        # Strict ordering looks up the first active event delivery of a webhook, per status.
        Index("ix_deliveries_webhook_head", "webhook_id", "kind", "status", "sequence"),
        # Removing an event (pruning) looks up its deliveries for the foreign key: without this,
        # each event removed read the whole table while holding SQLite's write lock.
        Index("ix_deliveries_event", "event_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=ordered_id)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    # None for pings, which have no stored event.
    event_id: Mapped[str | None] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), default=None
    )
    topic: Mapped[str] = mapped_column(String(32))
    # event | ping | redelivery: pings and manual re-sends never count toward auto-pause.
    kind: Mapped[str] = mapped_column(String(16), default="event")
    # pending | retrying | succeeded | failed | held (webhook paused)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # What a delivery without a stored event sends (a ping's webhook snapshot, as JSON); event
    # deliveries build their body from the event at each attempt (Metadata.Attempt.Id differs).
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int | None] = mapped_column(default=now_ms)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[int | None] = mapped_column(default=None)
    last_response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # Monotonic per webhook; strict ordering sends in this order.
    sequence: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[int] = mapped_column(default=now_ms)
    updated_at: Mapped[int] = mapped_column(default=now_ms, onupdate=now_ms)
    completed_at: Mapped[int | None] = mapped_column(default=None)


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=ordered_id)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[int] = mapped_column(default=now_ms)
    duration_ms: Mapped[float | None] = mapped_column(default=None)
    # 1 for the first try of a delivery, 2 for the next, ...
    number: Mapped[int] = mapped_column(Integer, default=1)
    request_url: Mapped[str] = mapped_column(String(2048))
    # Secrets masked before they are stored.
    request_headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The first 64 KiB of the response body.
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class AuditEntry(Base):
    """One line of the audit log: who did what to which object, and when.

    `organization_id` is None for what belongs to no organization (a failed login with an
    unknown name, a ban from such logins); those lines are for the operator (CLI) only.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_org_created", "organization_id", "created_at"),
        Index("ix_audit_log_action_created", "action", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=ordered_id)
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[int] = mapped_column(default=now_ms)
    # token | admin | cli | system | address (an SFTP or dashboard client by its IP address)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(128))
    # e.g. webhook.created, webhook.paused, user.removed, sftp.login_failed, notice.sent
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(255))
    # Facts of the action; never a secret.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LoginFailure(Base):
    """Failed SFTP logins of one address in its current window, and its ban: counted by every
    node, so an address cannot try `ban_threshold` times on each node of a cluster. An IPv6
    client's address is its network (`addresses.py`)."""

    __tablename__ = "login_failures"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[int]
    banned_until: Mapped[int | None] = mapped_column(default=None, index=True)
    updated_at: Mapped[int] = mapped_column(default=now_ms)
    # When an operator last lifted its ban (`sftphook bans lift`): each node drops the ban it
    # holds in memory when it reads this.
    lifted_at: Mapped[int | None] = mapped_column(default=None, index=True)


class Setting(Base):
    """Values shared by every node: host keys, the encryption key check, install facts."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[int] = mapped_column(default=now_ms, onupdate=now_ms)
