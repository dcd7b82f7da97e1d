"""`/api/v1/users`: the SFTP logins of the token's organization."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from sftphook.accounts.service import UNSET
from sftphook.api import problems
from sftphook.api.deps import AppDep, CurrentActor, OrganizationId
from sftphook.api.schemas import UserCreate, UserList, UserOut, UserUpdate

router = APIRouter(prefix="/users", tags=["users"], responses=problems.responses(401))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problems.responses(409, 422),
    summary="Add an SFTP user",
)
async def create_user(
    body: UserCreate,
    app: AppDep,
    organization_id: OrganizationId,
    actor: CurrentActor,
    request: Request,
    response: Response,
) -> UserOut:
    user = await app.accounts.add_user(
        organization_id,
        body.username,
        password=body.password,
        public_keys=body.public_keys,
        home=body.home,
        permissions=list(body.permissions),
        enabled=body.enabled,
        actor=actor,
    )
    response.headers["Location"] = f"{request.url.path}/{user.username}"
    return UserOut.of(user)


@router.get("", summary="List the SFTP users")
async def list_users(app: AppDep, organization_id: OrganizationId) -> UserList:
    users = await app.accounts.list_users(organization_id)
    return UserList(data=[UserOut.of(u) for u in users])


@router.get("/{username}", responses=problems.responses(404), summary="Get one SFTP user")
async def get_user(username: str, app: AppDep, organization_id: OrganizationId) -> UserOut:
    return UserOut.of(await app.accounts.get_user(organization_id, username))


@router.patch(
    "/{username}",
    responses=problems.responses(404, 422),
    summary="Change an SFTP user",
    description='Only the fields present change. `"password": null` removes the password; a '
    "user keeps at least a password or a public key. Disabling a user, or changing their "
    "password, keys, home or permissions, ends their open sessions.",
)
async def update_user(
    username: str,
    body: UserUpdate,
    app: AppDep,
    organization_id: OrganizationId,
    actor: CurrentActor,
) -> UserOut:
    given = body.model_fields_set
    changes: dict[str, Any] = {
        "password": body.password if "password" in given else UNSET,
        "public_keys": body.public_keys,
        "home": body.home,
        "permissions": list(body.permissions) if body.permissions is not None else None,
        "enabled": body.enabled,
    }
    user = await app.accounts.update_user(organization_id, username, actor=actor, **changes)
    return UserOut.of(user)


@router.delete(
    "/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems.responses(404),
    summary="Remove an SFTP user",
    description="Their open sessions end; their files stay.",
)
async def delete_user(
    username: str, app: AppDep, organization_id: OrganizationId, actor: CurrentActor
) -> None:
    await app.accounts.remove_user(organization_id, username, actor=actor)
