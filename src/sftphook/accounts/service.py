"""The accounts service: what the CLI, the API and the dashboard call to manage accounts.

Each method is one unit of work (one transaction). Lookups by id or name are scoped to an
organization, and another organization's object is reported as not found.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy.exc import IntegrityError

from sftphook.accounts import passwords, validation
from sftphook.audit import SYSTEM, Actor, AuditLog
from sftphook.channels.email import parse_recipients
from sftphook.errors import AlreadyExists, InvalidInput, NotFound, Unauthorized
from sftphook.store import organizations, tokens, users
from sftphook.store.database import Database
from sftphook.store.models import ApiToken, Organization, User, now_ms

log = logging.getLogger(__name__)

DEFAULT_ORGANIZATION = "default"
TOKEN_PREFIX = "shk_"

# Marks "not given" where None has a meaning (removing a password).
UNSET: Any = object()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountService:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Called with the username when a user is disabled or removed (to end their sessions).
        self.user_revoked_hooks: list[Callable[[str], None]] = []

    # Organizations

    async def ensure_default_organization(self) -> Organization:
        try:
            async with self._db.transaction() as s:
                existing = await organizations.list_all(s)
                if existing:
                    return existing[0]
                return await organizations.add(s, DEFAULT_ORGANIZATION)
        except IntegrityError:
            # Another node starting at the same moment created it first.
            async with self._db.session() as s:
                return (await organizations.list_all(s))[0]

    async def add_organization(self, name: str) -> Organization:
        validation.check_name(name, what="organization name", field="name")
        try:
            async with self._db.transaction() as s:
                if await organizations.by_name(s, name):
                    raise AlreadyExists(f"organization {name!r} already exists")
                return await organizations.add(s, name)
        except IntegrityError as exc:
            raise AlreadyExists(f"organization {name!r} already exists") from exc

    async def get_organization(self, organization_id: str) -> Organization:
        async with self._db.session() as s:
            org = await organizations.get(s, organization_id)
        if org is None:
            raise NotFound("no such organization")
        return org

    async def set_notice_email(
        self, organization_id: str, address: str | None, *, actor: Actor = SYSTEM
    ) -> Organization:
        """Where owner notices go (`Name <addr>` and comma-separated lists allowed); None or an
        empty string stops them."""
        value: str | None = None
        if address is not None and address.strip():
            try:
                value = ", ".join(parse_recipients(address))
            except InvalidInput as exc:
                raise InvalidInput(exc.message, field="notice_email") from exc
            if len(value) > 320:
                raise InvalidInput(
                    "notice_email is longer than 320 characters", field="notice_email"
                )
        async with self._db.transaction() as s:
            org = await organizations.get(s, organization_id)
            if org is None:
                raise NotFound("no such organization")
            org.notice_email = value
            await AuditLog.record_by(
                s,
                org.id,
                actor,
                "organization.updated",
                "organization",
                org.id,
                {"name": org.name, "notice_email": value},
            )
        return org

    async def list_organizations(self) -> list[Organization]:
        async with self._db.session() as s:
            return await organizations.list_all(s)

    async def resolve_organization(self, name_or_id: str | None) -> Organization:
        """The named organization, or the only one when no name is given."""
        async with self._db.session() as s:
            if name_or_id:
                org = await organizations.by_name(s, name_or_id) or await organizations.get(
                    s, name_or_id
                )
                if org is None:
                    raise NotFound(f"no organization named {name_or_id!r}")
                return org
            orgs = await organizations.list_all(s)
        if not orgs:
            raise NotFound("there is no organization yet: start the server once, or `orgs add`")
        if len(orgs) > 1:
            named = next((o for o in orgs if o.name == DEFAULT_ORGANIZATION), None)
            if named is not None:
                return named
            raise InvalidInput("there are several organizations: name one with --org")
        return orgs[0]

    # SFTP users

    async def add_user(
        self,
        organization_id: str,
        username: str,
        *,
        password: str | None = None,
        public_keys: list[str] | tuple[str, ...] = (),
        home: str = "/",
        permissions: str | list[str] | None = None,
        enabled: bool = True,
        actor: Actor = SYSTEM,
    ) -> User:
        validation.check_name(username, what="username", field="username")
        keys = validation.normalize_public_keys(public_keys)
        if password is None and not keys:
            raise InvalidInput(
                "give the user a password or a public key (or both)", field="password"
            )
        password_hash = (
            await passwords.hash_password_async(validation.check_user_password(password))
            if password is not None
            else None
        )
        user = User(
            organization_id=organization_id,
            username=username,
            password_hash=password_hash,
            public_keys=keys,
            home=validation.normalize_home(home),
            permissions=validation.normalize_permissions(
                permissions if permissions is not None else list(validation.PERMISSIONS)
            ),
            enabled=enabled,
        )
        try:
            async with self._db.transaction() as s:
                if await organizations.get(s, organization_id) is None:
                    raise NotFound("no such organization")
                if await users.by_username(s, username):
                    raise AlreadyExists(f"user {username!r} already exists", field="username")
                s.add(user)
                await s.flush()
                await AuditLog.record_by(
                    s,
                    organization_id,
                    actor,
                    "user.added",
                    "user",
                    username,
                    {
                        "home": user.home,
                        "permissions": user.permissions,
                        "enabled": enabled,
                        "logins": (["password"] if password_hash else [])
                        + (["public key"] if keys else []),
                    },
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"user {username!r} already exists") from exc
        log.info("user added: %s", username)
        return user

    async def list_users(self, organization_id: str) -> list[User]:
        async with self._db.session() as s:
            return await users.list_for(s, organization_id)

    async def get_user(self, organization_id: str, username: str) -> User:
        async with self._db.session() as s:
            user = await users.get(s, organization_id, username)
        if user is None:
            raise NotFound(f"no user named {username!r}")
        return user

    async def update_user(
        self,
        organization_id: str,
        username: str,
        *,
        password: str | None = UNSET,
        public_keys: list[str] | None = None,
        home: str | None = None,
        permissions: str | list[str] | None = None,
        enabled: bool | None = None,
        actor: Actor = SYSTEM,
    ) -> User:
        """Change what is given; `password=None` removes the password (an empty one is too
        short, not a removal)."""
        changes: dict[str, Any] = {}
        if password is not UNSET:
            changes["password_hash"] = (
                await passwords.hash_password_async(validation.check_user_password(password))
                if password is not None
                else None
            )
        if public_keys is not None:
            changes["public_keys"] = validation.normalize_public_keys(public_keys)
        if home is not None:
            changes["home"] = validation.normalize_home(home)
        if permissions is not None:
            changes["permissions"] = validation.normalize_permissions(permissions)
        if enabled is not None:
            changes["enabled"] = enabled
        async with self._db.transaction() as s:
            user = await users.get(s, organization_id, username)
            if user is None:
                raise NotFound(f"no user named {username!r}")
            # A session keeps the access it logged in with: changing it must end the session.
            access_before = user.session_access()
            for key, value in changes.items():
                setattr(user, key, value)
            access_changed = user.session_access() != access_before
            if user.password_hash is None and not user.public_keys:
                raise InvalidInput(
                    "a user needs a password or a public key; this change would leave neither",
                    field="password",
                )
            user.updated_at = now_ms()
            changed = sorted(k.removesuffix("_hash") for k in changes)
            if enabled is False:
                action = "user.disabled"
            elif enabled is True and changed == ["enabled"]:
                action = "user.enabled"
            else:
                action = "user.updated"
            await AuditLog.record_by(
                s, organization_id, actor, action, "user", username, {"changed": changed}
            )
        if enabled is False or access_changed:
            self._revoked(username)
        return user

    async def remove_user(
        self, organization_id: str, username: str, *, actor: Actor = SYSTEM
    ) -> None:
        async with self._db.transaction() as s:
            user = await users.get(s, organization_id, username)
            if user is None:
                raise NotFound(f"no user named {username!r}")
            await s.delete(user)
            await AuditLog.record_by(s, organization_id, actor, "user.removed", "user", username)
        log.info("user removed: %s", username)
        self._revoked(username)

    async def login_candidate(self, username: str) -> User | None:
        """The enabled user with this name, for SFTP authentication."""
        async with self._db.session() as s:
            user = await users.by_username(s, username)
        return user if user is not None and user.enabled else None

    async def rehash_password(self, user: User, password: str) -> None:
        """After a successful password login: store the password again when its hash has other
        argon2 parameters than new hashes get. Never raises: a login does not fail for this."""
        verified = user.password_hash
        if verified is None or not passwords.needs_rehash(verified):
            return
        try:
            new_hash = await passwords.rehash_async(verified, password)
            async with self._db.transaction() as s:
                stored = await users.replace_password_hash(s, user.id, verified, new_hash)
        except Exception as error:
            # The type only: a database error's text carries the statement's parameters.
            log.warning(
                "could not rehash the password of user %s: %s", user.username, type(error).__name__
            )
            return
        if stored:
            log.info("rehashed the password of user %s with current parameters", user.username)

    async def current_users(self, usernames: Collection[str]) -> dict[str, User]:
        """The users with these names as stored now, by name: what the SFTP front compares its
        open sessions with, to learn of changes made by another process or node."""
        async with self._db.session() as s:
            return {u.username: u for u in await users.by_usernames(s, usernames)}

    def _revoked(self, username: str) -> None:
        for hook in self.user_revoked_hooks:
            try:
                hook(username)
            except Exception:
                log.exception("user revocation hook failed")

    # API tokens

    async def create_token(
        self, organization_id: str, name: str, *, actor: Actor = SYSTEM
    ) -> tuple[ApiToken, str]:
        """A new token; the plain value is returned here once and stored only as a hash."""
        name = name.strip()
        if not name or len(name) > 128:
            raise InvalidInput("token name must be 1 to 128 characters", field="name")
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(
            organization_id=organization_id,
            name=name,
            token_hash=hash_token(plain),
            prefix=plain[: len(TOKEN_PREFIX) + 6],
        )
        async with self._db.transaction() as s:
            if await organizations.get(s, organization_id) is None:
                raise NotFound("no such organization")
            s.add(token)
            await s.flush()
            await AuditLog.record_by(
                s, organization_id, actor, "token.created", "token", token.id, {"name": name}
            )
        return token, plain

    async def list_tokens(self, organization_id: str) -> list[ApiToken]:
        async with self._db.session() as s:
            return await tokens.list_for(s, organization_id)

    async def revoke_token(
        self, organization_id: str, token_id: str, *, actor: Actor = SYSTEM
    ) -> ApiToken:
        async with self._db.transaction() as s:
            token = await tokens.get(s, organization_id, token_id)
            if token is None:
                raise NotFound(f"no token with id {token_id!r}")
            if token.revoked_at is None:
                token.revoked_at = now_ms()
                await AuditLog.record_by(
                    s,
                    organization_id,
                    actor,
                    "token.revoked",
                    "token",
                    token.id,
                    {"name": token.name},
                )
        return token

    async def authenticate_token(self, plain: str) -> ApiToken:
        if not plain.startswith(TOKEN_PREFIX) or len(plain) > 256:
            raise Unauthorized("invalid API token")
        async with self._db.transaction() as s:
            token = await tokens.by_hash(s, hash_token(plain))
            if token is None or token.revoked_at is not None:
                raise Unauthorized("invalid or revoked API token")
            now = now_ms()
            # Written at most once a minute: a busy client should not turn reads into writes.
            if token.last_used_at is None or now - token.last_used_at > 60_000:
                token.last_used_at = now
        return token
