"""Webhook URL safety through the real service: every forbidden destination is refused at save
time (create and update) and nothing is saved; a name that changes its answer between the
check and the connection is refused at connect time, and the private address gets no request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sftphook.app import App
from sftphook.config import Settings
from sftphook.errors import InvalidInput
from sftphook.store.models import Attempt, Webhook
from sftphook.webhooks.engine import DeliveryEngine
from sftphook.webhooks.http import HttpTransport
from sftphook.webhooks.urlsafety import UrlPolicy
from tests.reliability.conftest import Ledger
from tests.unit.webhooks.fake_dns import HostsLookup
from tests.unit.webhooks.test_urlsafety import REFUSED_HOSTS

# Classes the unit corpus does not spell out yet: private ranges in decimal, octal and hex,
# cloud metadata addresses, more embedded IPv4 forms and IPv6 unique-local ranges.
EXTRA_HOSTS = [
    "3232235777",  # 192.168.1.1
    "167772161",  # 10.0.0.1
    "0300.0250.0001.0001",  # 192.168.1.1
    "012.0.0.1",  # 10.0.0.1
    "0xa.0.0.1",
    "0xc0.0xa8.1.1",
    "0xAC100001",  # 172.16.0.1
    "192.168.257",  # 192.168.1.1
    "100.100.100.200",  # CGNAT: a cloud's metadata service
    "100.64.0.0",
    "169.254.170.2",  # container credentials endpoint
    "[fd00:ec2::254]",  # a cloud's IPv6 metadata service
    "[fd12:3456:789a:1::1]",
    "[FC00::]",
    "[::ffff:192.168.0.1]",
    "[::ffff:c0a8:1]",
    "[::ffff:0a00:0001]",
    "[64:ff9b::c0a8:101]",
    "[64:ff9b::100.64.0.1]",
    "[2002:c0a8:101::1]",
    "[2002:6440:1::1]",
    "[::ffff:0.0.0.0]",
    "[::]",
    "[0::1]",
    "[::0:1]",
    "127.127.127.127",
    "0x7f.0.0.0x1",
    "0177.1",
]

# Names whose answers are forbidden, through the lookup seam.
RESOLVING = {
    "internal.corp": ["10.0.0.5"],
    "metadata.google.internal": ["169.254.169.254"],
    "mixed.example": ["8.8.8.8", "10.1.1.1"],
    "mixed6.example": ["2606:4700:4700::1111", "fd00::1"],
    "ula.example": ["fd00::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "cgnat.example": ["100.64.0.7"],
    "nat64.example": ["64:ff9b::a00:1"],
    "loop6.example": ["::1"],
    "zero.example": ["0.0.0.0"],
    "teredo.example": ["2001:0:4136:e378:8000:63bf:80ff:fffe"],
    "multicast.example": ["224.0.0.251"],
}
PUBLIC = {"hooks.example": ["8.8.8.8"]}


def urls() -> list[str]:
    hosts = [host for host, _word in REFUSED_HOSTS] + EXTRA_HOSTS + list(RESOLVING)
    out: list[str] = []
    for host in hosts:
        out += [f"https://{host}/hook", f"http://{host}:8080/hook?x=1"]
    return out


@pytest.fixture
async def strict_app(tmp_path: Path) -> AsyncIterator[App]:
    """An App whose operator allows plain HTTP but no private network."""
    settings = Settings.load(
        data_dir=tmp_path / "strict",
        webhooks={"allow_http": True, "allowed_networks": []},
    )
    application = App(settings)
    await application.prepare()
    try:
        yield application
    finally:
        await application.db.close()


async def _count(app: App, model: type) -> int:
    async with app.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_forbidden_destinations_are_refused_and_nothing_is_saved(
    strict_app: App, ledger: Ledger
) -> None:
    app = strict_app
    app.webhooks.lookup = HostsLookup({**RESOLVING, **PUBLIC})
    org = (await app.accounts.resolve_organization(None)).id
    accepted: list[str] = []
    corpus = urls()
    for url in corpus:
        try:
            await app.webhooks.create(org, nickname="probe", url=url, topics=["file.created"])
            accepted.append(url)
        except InvalidInput:
            pass
    saved = await _count(app, Webhook)
    # The same destinations as an update of a webhook that was fine.
    fine, _secret = await app.webhooks.create(
        org, nickname="fine", url="https://hooks.example/hook", topics=["file.created"]
    )
    for url in corpus:
        try:
            await app.webhooks.update(org, fine.id, url=url)
            accepted.append("update " + url)
        except InvalidInput:
            pass
    changed = (await app.webhooks.get(org, fine.id)).url != "https://hooks.example/hook"
    ledger.record(
        "webhook url safety",
        "private, loopback, link-local, CGNAT, ULA, mapped and embedded, odd spellings, "
        "names resolving to them: create and update",
        tried=2 * len(corpus),
        escaped=len(accepted) + saved + int(changed),
        note=f"{len(corpus)} URLs ({len(RESOLVING)} names through the lookup seam); "
        f"{saved} saved by create, update changed the URL: {changed}",
    )
    assert not accepted, accepted[:10]
    assert saved == 0 and not changed
    assert set(RESOLVING) <= set(app.webhooks.lookup.calls)  # type: ignore[attr-defined]


async def test_a_name_that_rebinds_after_the_check_gets_no_request(
    strict_app: App, ledger: Ledger
) -> None:
    app = strict_app
    connections = 0

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    listener = await asyncio.start_server(receiver, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    # Public when the webhook is saved, loopback (where the receiver listens) afterwards.
    lookup = HostsLookup({"rebind.example": [["8.8.8.8"], ["127.0.0.1"]]})
    app.webhooks.lookup = lookup
    org = (await app.accounts.resolve_organization(None)).id
    hook, _ = await app.webhooks.create(
        org, nickname="rebind", url=f"http://rebind.example:{port}/hook", topics=["file.created"]
    )
    await app.webhooks.ping(org, hook.id)
    transport = HttpTransport(UrlPolicy.from_settings(True, []), timeout=5, lookup=lookup)
    engine = DeliveryEngine(
        app.db, app.settings.webhooks, app.secret_box, app.metrics, transport=transport
    )
    try:
        (job,) = await engine.claim(10, 2**62)
        result = await engine.attempt(job)
        await engine.record([result])
    finally:
        await transport.close()
        listener.close()
        await listener.wait_closed()
    async with app.db.session() as s:
        errors = list(await s.scalars(select(Attempt.error)))
    ledger.record(
        "webhook url safety",
        "a name that changes its answer between the check and the connection",
        tried=1,
        escaped=connections,
        note=f"lookups {lookup.calls}; attempt error: {errors[0] if errors else None}",
    )
    assert connections == 0
    assert len(lookup.calls) == 2
    assert errors and errors[0] and "127.0.0.1" in errors[0]
