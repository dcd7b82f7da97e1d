"""Clients of the running API: one bearer token per organization."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from sftphook.app import App


@dataclass
class Tenant:
    organization_id: str
    token: str
    client: httpx.AsyncClient


async def _tenant(app: App, organization_id: str, base: str) -> Tenant:
    _, plain = await app.accounts.create_token(organization_id, "tests")
    client = httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {plain}"})
    return Tenant(organization_id, plain, client)


@pytest.fixture
def base_url(http_app: App) -> str:
    return f"http://127.0.0.1:{http_app.http_port}"


@pytest.fixture
async def alpha(http_app: App, base_url: str) -> AsyncIterator[Tenant]:
    """The default organization, with a token."""
    org = await http_app.accounts.resolve_organization(None)
    tenant = await _tenant(http_app, org.id, base_url)
    async with tenant.client:
        yield tenant


@pytest.fixture
async def beta(http_app: App, base_url: str) -> AsyncIterator[Tenant]:
    """A second organization, with its own token."""
    org = await http_app.accounts.add_organization("beta")
    tenant = await _tenant(http_app, org.id, base_url)
    async with tenant.client:
        yield tenant


@pytest.fixture
async def anonymous(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        yield client


def assert_problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINBcSNsV104DUxwAFnOmJb5QZFdeoZ8Ly7UrFekl8jrW test@k1"
)
