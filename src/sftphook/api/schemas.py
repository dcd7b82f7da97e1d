"""The request and response bodies of the REST API, kept apart from the table models.

Inputs forbid unknown fields and bound every length, so that a typo is a 422 that names the field
rather than a silently ignored value. Outputs never carry a password hash or a token hash.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from sftphook.events import Topic
from sftphook.store.models import ApiToken, Event, User

Permission = Literal["read", "write", "delete", "list"]
ALL_PERMISSIONS: list[Permission] = ["read", "write", "delete", "list"]
MAX_KEYS = 100
MAX_KEY_LENGTH = 16384


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An error, as `application/problem+json` (RFC 9457)."""

    type: str = Field(examples=["https://sftphook.dev/problems/invalid-input"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="For invalid input: one entry per field to fix."
    )


# Users


class UserCreate(Input):
    username: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Letters, digits, '.', '_' or '-', starting with a letter or digit. "
        "Unique across organizations: it is the SFTP login.",
        examples=["partner-acme"],
    )
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="At least 8 characters. Stored as an argon2id hash, never returned.",
    )
    public_keys: list[str] = Field(
        default_factory=list,
        max_length=MAX_KEYS,
        description="OpenSSH public key lines (`ssh-ed25519 AAAA… comment`).",
    )
    home: str = Field(
        default="/",
        max_length=1024,
        description="Home directory inside the organization root; `/` is the whole root.",
        examples=["/partners/acme"],
    )
    permissions: list[Permission] = Field(default_factory=lambda: list(ALL_PERMISSIONS))
    enabled: StrictBool = True

    @field_validator("public_keys")
    @classmethod
    def _key_length(cls, keys: list[str]) -> list[str]:
        return _check_keys(keys)


class UserUpdate(Input):
    """Only the fields present change; `"password": null` removes the password."""

    password: str | None = Field(default=None, min_length=1, max_length=1024)
    public_keys: list[str] | None = Field(default=None, max_length=MAX_KEYS)
    home: str | None = Field(default=None, max_length=1024)
    permissions: list[Permission] | None = None
    enabled: StrictBool | None = None

    @field_validator("public_keys", "home", "permissions", "enabled", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value

    @field_validator("public_keys")
    @classmethod
    def _key_length(cls, keys: list[str] | None) -> list[str] | None:
        return None if keys is None else _check_keys(keys)


def _check_keys(keys: list[str]) -> list[str]:
    for key in keys:
        if len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"a public key is longer than {MAX_KEY_LENGTH} characters")
    return keys


class UserOut(BaseModel):
    id: str
    organization_id: str
    username: str
    home: str
    permissions: list[Permission]
    enabled: bool
    has_password: bool
    public_keys: list[str]
    created_at: int = Field(description="Unix epoch milliseconds.")
    updated_at: int = Field(description="Unix epoch milliseconds.")

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            organization_id=user.organization_id,
            username=user.username,
            home=user.home,
            permissions=[p for p in user.permissions.split(",") if p],  # type: ignore[misc]
            enabled=user.enabled,
            has_password=user.password_hash is not None,
            public_keys=[k for k in user.public_keys.splitlines() if k],
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


class UserList(BaseModel):
    data: list[UserOut]


# Events


class Actor(BaseModel):
    type: str = Field(examples=["User"])
    id: str = Field(examples=["partner-acme"])


class EventOut(BaseModel):
    id: str
    topic: Topic
    created_at: int = Field(description="Unix epoch milliseconds.")
    actor: Actor
    path: str = Field(description="Relative to the organization root; a directory ends in `/`.")
    previous_path: str | None = None
    size: int | None = None
    sha256: str | None = None
    protocol: str | None = None
    client_ip: str | None = None
    session_id: str | None = None

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(
            id=event.id,
            topic=Topic(event.topic),
            created_at=event.created_at,
            actor=Actor(type=event.actor_type, id=event.actor_id),
            path=event.path,
            previous_path=event.previous_path,
            size=event.size,
            sha256=event.sha256,
            protocol=event.protocol,
            client_ip=event.client_ip,
            session_id=event.session_id,
        )


class EventPage(BaseModel):
    data: list[EventOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )
    next: str | None = Field(description="The URL of the next page; null on the last page.")


# Tokens


class TokenCreate(Input):
    name: str = Field(min_length=1, max_length=128, examples=["deploy pipeline"])


class TokenOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The first characters of the token, to tell tokens apart.")
    created_at: int
    last_used_at: int | None
    revoked_at: int | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself. Shown in this response only: store it now.")


class TokenList(BaseModel):
    data: list[TokenOut]
