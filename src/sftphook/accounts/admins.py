"""Dashboard accounts (admins): argon2id passwords and membership of organizations.

Admins are separate from SFTP users: an admin logs in to the dashboard and sees only the
organizations they belong to.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sftphook.accounts import passwords, validation
from sftphook.errors import AlreadyExists, NotFound
from sftphook.store import organizations
from sftphook.store.database import Database
from sftphook.store.models import Admin, AdminMembership, Organization

log = logging.getLogger(__name__)


async def _by_username(session: AsyncSession, username: str) -> Admin | None:
    result = await session.execute(select(Admin).where(Admin.username == username))
    return result.scalar_one_or_none()


async def _organizations_of(session: AsyncSession, admin_id: str) -> list[Organization]:
    result = await session.execute(
        select(Organization)
        .join(AdminMembership, AdminMembership.organization_id == Organization.id)
        .where(AdminMembership.admin_id == admin_id)
        .order_by(Organization.name)
    )
    return list(result.scalars())


class AdminService:
    """What the dashboard and `sftphook admins` call; each method is one unit of work."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_admin(
        self, username: str, password: str, organization_ids: list[str] | tuple[str, ...] = ()
    ) -> Admin:
        validation.check_name(username, what="admin name", field="username")
        admin = Admin(
            username=username,
            password_hash=await passwords.hash_password_async(validation.check_password(password)),
        )
        try:
            async with self._db.transaction() as s:
                if await _by_username(s, username):
                    raise AlreadyExists(f"admin {username!r} already exists", field="username")
                s.add(admin)
                await s.flush()
                for org_id in organization_ids:
                    if await organizations.get(s, org_id) is None:
                        raise NotFound("no such organization")
                    s.add(AdminMembership(admin_id=admin.id, organization_id=org_id))
        except IntegrityError as exc:
            raise AlreadyExists(f"admin {username!r} already exists") from exc
        log.info("admin added: %s", username)
        return admin

    async def add_membership(self, username: str, organization_id: str) -> None:
        async with self._db.transaction() as s:
            admin = await _by_username(s, username)
            if admin is None:
                raise NotFound(f"no admin named {username!r}")
            if await organizations.get(s, organization_id) is None:
                raise NotFound("no such organization")
            if await s.get(AdminMembership, (admin.id, organization_id)) is None:
                s.add(AdminMembership(admin_id=admin.id, organization_id=organization_id))

    async def set_password(self, username: str, password: str) -> None:
        password_hash = await passwords.hash_password_async(validation.check_password(password))
        async with self._db.transaction() as s:
            admin = await _by_username(s, username)
            if admin is None:
                raise NotFound(f"no admin named {username!r}")
            admin.password_hash = password_hash

    async def remove_admin(self, username: str) -> None:
        async with self._db.transaction() as s:
            admin = await _by_username(s, username)
            if admin is None:
                raise NotFound(f"no admin named {username!r}")
            await s.delete(admin)

    async def list_admins(self) -> list[tuple[Admin, list[Organization]]]:
        async with self._db.session() as s:
            result = await s.execute(select(Admin).order_by(Admin.username))
            admins = list(result.scalars())
            return [(a, await _organizations_of(s, a.id)) for a in admins]

    async def count(self) -> int:
        async with self._db.session() as s:
            return int((await s.execute(select(func.count()).select_from(Admin))).scalar_one())

    async def organization_ids_of_name(self, username: str) -> list[str]:
        """The organizations of the admin with this name (none for an unknown name)."""
        async with self._db.session() as s:
            admin = await _by_username(s, username)
            return [o.id for o in await _organizations_of(s, admin.id)] if admin else []

    async def authenticate(self, username: str, password: str) -> Admin | None:
        """The admin when the password matches; an unknown name costs the same time."""
        async with self._db.session() as s:
            admin = await _by_username(s, username)
        ok = await passwords.verify_password_async(admin.password_hash if admin else None, password)
        if not ok or admin is None:
            return None
        await self._rehash_password(admin, password)
        return admin

    async def _rehash_password(self, admin: Admin, password: str) -> None:
        """Store the password again when its hash has other argon2 parameters than new hashes
        get. The salt is kept, so the admin's dashboard sessions go on
        (`web.sessions.SessionCodec.credential_tag`). Never raises: a login does not fail for
        this."""
        verified = admin.password_hash
        if not passwords.needs_rehash(verified):
            return
        try:
            new_hash = await passwords.rehash_async(verified, password)
            async with self._db.transaction() as s:
                # Only the hash just verified: a password set meanwhile wins.
                result = await s.execute(
                    update(Admin)
                    .where(Admin.id == admin.id, Admin.password_hash == verified)
                    .values(password_hash=new_hash)
                    .execution_options(synchronize_session=False)
                )
        except Exception as error:
            # The type only: a database error's text carries the statement's parameters.
            log.warning(
                "could not rehash the password of admin %s: %s",
                admin.username,
                type(error).__name__,
            )
            return
        if getattr(result, "rowcount", 0):
            log.info("rehashed the password of admin %s with current parameters", admin.username)

    async def get(self, admin_id: str) -> Admin | None:
        async with self._db.session() as s:
            return await s.get(Admin, admin_id)

    async def organizations_of(self, admin_id: str) -> list[Organization]:
        async with self._db.session() as s:
            return await _organizations_of(s, admin_id)
