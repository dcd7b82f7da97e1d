"""Behind a reverse proxy: the login throttle counts the browser's address (X-Forwarded-For)
when the proxy is trusted, and the proxy's own address otherwise; pages load their assets from
the address the browser used."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urljoin

import httpx
import pytest

from sftphook.config import Settings
from tests.conftest import serving
from tests.web.conftest import CSRF, PASSWORD, Dashboard, _dashboard


async def _try_login(base: str, forwarded_for: str, name: str, password: str) -> int:
    headers = {"X-Forwarded-For": forwarded_for}
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:
        token = CSRF.search((await client.get("/login")).text)
        assert token is not None
        resp = await client.post(
            "/login", data={"username": name, "password": password, "csrf_token": token.group(1)}
        )
        return resp.status_code


@pytest.fixture(params=[["127.0.0.1/32"], []], ids=["trusted", "untrusted"])
async def proxied(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Dashboard]:
    settings.http.trusted_proxies = request.param
    async for value in _dashboard(settings, frozenset({"http"})):
        yield value


async def test_one_browsers_failures_do_not_lock_out_another_behind_a_trusted_proxy(
    proxied: Dashboard,
) -> None:
    trusted = bool(proxied.app.settings.http.trusted_proxies)
    statuses = [await _try_login(proxied.base, "203.0.113.5", "mallory", "guess") for _ in range(6)]
    assert statuses[-1] == 429  # that browser is throttled
    status = await _try_login(proxied.base, "198.51.100.20", "admin", PASSWORD)
    # Trusted: another browser's address, not throttled. Untrusted: every request comes from
    # the proxy's address, so the admin shares the attacker's lockout.
    assert status == (303 if trusted else 429)


async def test_assets_load_from_the_pages_own_address_behind_a_tls_balancer(
    settings: Settings,
) -> None:
    """A balancer on another machine ends TLS for https://files.example.com and passes its own
    Host; it is no trusted proxy, so the node sees plain http. The stylesheet and script were
    absolute http:// links to the Host the node saw: blocked as mixed content, or unreachable,
    leaving a dashboard without styles or dialogs."""
    settings.http.public_url = "https://files.example.com"
    settings.http.trusted_proxies = []
    async with (
        serving(settings, frozenset({"http"})) as app,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{app.http_port}", headers={"Host": "10.0.0.11:8080"}
        ) as client,
    ):
        page = await client.get("/login")
        assets = re.findall(r'<(?:link rel="stylesheet" href|script src)="([^"]+)"', page.text)
        assert len(assets) == 2, page.text
        for asset in assets:
            seen = urljoin("https://files.example.com/login", asset)
            assert seen.startswith("https://files.example.com/static/"), asset
            assert (await client.get(asset)).status_code == 200


async def test_addresses_of_one_ipv6_network_share_the_login_throttle(
    settings: Settings,
) -> None:
    """One end site holds a whole /64: a fresh address for every try must not get it five more
    tries each. Each try uses another name, so only the address keys can add up."""
    settings.http.trusted_proxies = ["127.0.0.1/32"]
    async for dashboard in _dashboard(settings, frozenset({"http"})):
        statuses = [
            await _try_login(dashboard.base, f"2001:db8:1:2::{i + 1:x}", f"guess{i}", "guess")
            for i in range(5)
        ]
        assert statuses == [401] * 5
        same_network = await _try_login(dashboard.base, "2001:db8:1:2:ffff::9", "admin", PASSWORD)
        assert same_network == 429
        other_network = await _try_login(dashboard.base, "2001:db8:1:3::1", "admin", PASSWORD)
        assert other_network == 303
