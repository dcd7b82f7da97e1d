"""Dashboard pages over real HTTP: SFTP user actions, the delivery log's filters and re-sends."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import httpx
import pytest

from sftphook.accounts import passwords
from sftphook.config import Settings
from sftphook.web.pages import PRETTY_DEPTH, _pretty_json
from tests.conftest import require_binary
from tests.web.conftest import Dashboard, Receiver, _dashboard, login
from tests.webhooks.conftest import file_event


async def test_sftp_user_actions_go_through_the_accounts_service(dashboard: Dashboard) -> None:
    accounts, org = dashboard.app.accounts, dashboard.organization.id
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        resp = await client.post(
            "/users",
            data={"csrf_token": token, "username": "acme", "password": "first password",
                  "home": "partners/acme", "permissions": ["read", "list"]},
        )  # fmt: skip
        assert resp.status_code == 303
        user = await accounts.get_user(org, "acme")
        assert (user.home, user.permissions) == ("/partners/acme", "read,list")

        await client.post("/users/acme/disable", data={"csrf_token": token})
        assert not (await accounts.get_user(org, "acme")).enabled
        page = await client.get("/users")
        assert "Disabled" in page.text

        await client.post("/users/acme/enable", data={"csrf_token": token})
        assert (await accounts.get_user(org, "acme")).enabled

        short = await client.post(
            "/users/acme/password", data={"csrf_token": token, "password": "short"}
        )
        assert short.status_code == 422 and "too short" in short.text
        await client.post(
            "/users/acme/password", data={"csrf_token": token, "password": "second password"}
        )
        user = await accounts.get_user(org, "acme")
        assert passwords.verify_password(user.password_hash, "second password")

        bad_key = await client.post(
            "/users", data={"csrf_token": token, "username": "k", "public_keys": "ssh-rsa nope"}
        )
        assert bad_key.status_code == 422
        assert 'id="public_keys-error"' in bad_key.text

        await client.post("/users/acme/delete", data={"csrf_token": token})
        assert await accounts.list_users(org) == []


async def test_a_taken_username_is_explained_in_the_form_that_keeps_its_input(
    dashboard: Dashboard,
) -> None:
    """Add user with a name already taken gave a bare "Already exists" page: the dialog and
    what was typed in it were gone."""
    accounts, org = dashboard.app.accounts, dashboard.organization.id
    await accounts.add_user(org, "acme", password="first password")
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        resp = await client.post(
            "/users",
            data={"csrf_token": token, "username": "acme", "password": "second password",
                  "home": "partners/acme-2", "permissions": ["read"]},
        )  # fmt: skip
        assert resp.status_code == 409
        error = resp.text.split('id="username-error">')[1].split("</p>")[0]
        assert "already exists" in error
        assert 'value="partners/acme-2"' in resp.text
        assert 'data-open-on-load="add-user"' in resp.text
    assert (await accounts.get_user(org, "acme")).home == "/"


async def test_an_empty_new_password_is_refused_not_taken_as_no_password(
    dashboard: Dashboard,
) -> None:
    """Reset password with the field left empty said "Password of acme changed." and removed
    the password of a user who also had a key: they could no longer log in with it."""
    accounts, org = dashboard.app.accounts, dashboard.organization.id
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    await accounts.add_user(org, "acme", password="first password", public_keys=[key])
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        resp = await client.post("/users/acme/password", data={"csrf_token": token, "password": ""})
        assert resp.status_code == 422
        assert 'id="reset_password-error"' in resp.text and "too short" in resp.text
    user = await accounts.get_user(org, "acme")
    assert passwords.verify_password(user.password_hash, "first password")


async def test_failed_deliveries_are_filtered_and_sent_again(
    dashboard: Dashboard, receiver: Receiver
) -> None:
    app, org = dashboard.app, dashboard.organization.id
    hook, _ = await app.webhooks.create(
        org, nickname="Ledger", url=receiver.url, topics=["file.created"]
    )
    receiver.status = 400  # refused: failed at once, not retried
    failed = await app.webhooks.ping(org, hook.id)
    await receiver.wait_for(1)
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        for _ in range(100):
            view, _attempts = await app.webhooks.get_delivery(org, failed.id)
            if view.status == "failed":
                break
            await asyncio.sleep(0.05)
        rows = await client.get(f"/webhooks/{hook.id}/deliveries/rows?status=failed")
        assert "Failed" in rows.text and "HTTP 400" in rows.text
        none = await client.get(f"/webhooks/{hook.id}/deliveries/rows?status=succeeded")
        assert "No deliveries match this filter" in none.text

        detail = await client.get(f"/deliveries/{failed.id}")
        assert "HTTP 400" in detail.text and "&#34;received&#34;: false" in detail.text

        receiver.status = 200
        resp = await client.post(
            f"/webhooks/{hook.id}/redeliver-failed", data={"csrf_token": token}
        )
        assert resp.status_code == 303
        notice = await client.get(resp.headers["location"])
        assert "1 failed delivery queued again." in notice.text
        await receiver.wait_for(2)
        assert receiver.requests[1].body != b""


async def test_a_held_delivery_shows_no_next_attempt(
    dashboard: Dashboard, receiver: Receiver
) -> None:
    # Held: nothing is attempted until the webhook is resumed, whatever time it was due.
    app, org = dashboard.app, dashboard.organization.id
    hook, _ = await app.webhooks.create(
        org, nickname="Held", url=receiver.url, topics=["file.created"]
    )
    await app.webhooks.pause(org, hook.id)
    await app.recorder.record(file_event(org))
    (held,), _ = await app.webhooks.list_deliveries(org, hook.id, statuses=["held"])
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        await login(client)
        detail = await client.get(f"/deliveries/{held.id}")
        assert detail.status_code == 200 and "Held" in detail.text
        assert "Next attempt" not in detail.text
        rows = await client.get(f"/webhooks/{hook.id}/deliveries/rows")
        assert "Held" in rows.text and "next try" not in rows.text


async def test_a_deeply_nested_response_body_is_shown_not_a_server_error(
    dashboard: Dashboard, receiver: Receiver
) -> None:
    """Pretty-printing a receiver's body of a few thousand nested arrays raised RecursionError:
    the delivery's page answered 500 for as long as the attempt was kept."""
    app, org = dashboard.app, dashboard.organization.id
    hook, _ = await app.webhooks.create(
        org, nickname="Ledger", url=receiver.url, topics=["file.created"]
    )
    receiver.body = b"[" * 3000 + b"]" * 3000
    ping = await app.webhooks.ping(org, hook.id)
    await receiver.wait_for(1)
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        await login(client)
        for _ in range(100):
            _view, attempts = await app.webhooks.get_delivery(org, ping.id)
            if attempts:
                break
            await asyncio.sleep(0.05)
        for path in (f"/deliveries/{ping.id}", f"/deliveries/{ping.id}?part=attempts"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert "[" * 3000 + "]" * 3000 in page.text


def test_json_is_indented_up_to_a_sane_depth_and_shown_as_it_came_beyond() -> None:
    """Each level of indentation adds two spaces to every line below it: 3,000 nested arrays
    (6 KB, which Python 3.13's parser reads) would make an 18 MB page."""
    assert _pretty_json(b'{"a": [1, {"b": null}]}') == (
        '{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ]\n}'
    )
    deepest = "[" * PRETTY_DEPTH + "]" * PRETTY_DEPTH
    assert _pretty_json(deepest).count("\n") == 2 * (PRETTY_DEPTH - 1)  # the innermost is []
    too_deep = '{"a": ' * PRETTY_DEPTH + "[]" + "}" * PRETTY_DEPTH
    assert _pretty_json(too_deep) == too_deep
    nested = "[" * 3000 + "]" * 3000
    assert _pretty_json(nested.encode()) == nested
    assert _pretty_json(b"not json \xff") == "not json \ufffd"
    assert _pretty_json(None) == ""


async def test_rotation_with_a_grace_period_shows_until_when(
    dashboard: Dashboard, receiver: Receiver
) -> None:
    app, org = dashboard.app, dashboard.organization.id
    hook, first = await app.webhooks.create(
        org, nickname="Ledger", url=receiver.url, topics=["file.created"]
    )
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        resp = await client.post(
            f"/webhooks/{hook.id}/rotate", data={"csrf_token": token, "grace_seconds": "3600"}
        )
        reveal = await client.get(resp.headers["location"])
        assert "New signing secret" in reveal.text and first not in reveal.text
        assert "old secret valid until" in reveal.text
    await app.webhooks.ping(org, hook.id)
    (ping,) = await receiver.wait_for(1)
    assert len(ping.headers["webhook-signature"].split()) == 2  # both secrets sign


async def test_an_odd_grace_period_is_refused_and_rotates_nothing(
    dashboard: Dashboard, receiver: Receiver
) -> None:
    """A superscript two passed isdigit() and float() failed on it: a 500. Other odd values
    rotated with no grace period at all, cutting off receivers that still had the old secret."""
    app, org = dashboard.app, dashboard.organization.id
    hook, _ = await app.webhooks.create(
        org, nickname="Ledger", url=receiver.url, topics=["file.created"]
    )
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        for grace in ("²", "1 hour", "-5"):
            resp = await client.post(
                f"/webhooks/{hook.id}/rotate", data={"csrf_token": token, "grace_seconds": grace}
            )
            assert resp.status_code == 422, (grace, resp.text)
            assert "grace" in resp.text
    rotations, _ = await app.audit.list(org, actions=["webhook.secret_rotated"])
    assert rotations == []


async def test_an_http_only_node_shows_the_sftp_nodes_host_key_fingerprints(
    dashboard: Dashboard, tmp_path
) -> None:
    from sftphook.sftp import hostkeys

    app = dashboard.app
    assert not app.settings.host_keys_dir.exists()  # this node never ran the SFTP role
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        await login(client)
        before = await client.get("/users")
        assert before.status_code == 200 and "SHA256:" not in before.text
        # Another node, with its own data directory, starts its SFTP role on this database.
        keys = await hostkeys.load_shared(app.db, app.secret_box, tmp_path / "other-node-keys")
        page = await client.get("/users")
    assert not app.settings.host_keys_dir.exists()
    for _algorithm, fingerprint in hostkeys.fingerprints(keys):
        assert fingerprint in page.text


async def test_host_keys_this_node_cannot_decrypt_leave_the_users_page_working(
    dashboard: Dashboard,
) -> None:
    import os

    from sftphook.sftp import hostkeys
    from sftphook.store import settings as stored_settings
    from sftphook.webhooks.crypto import SecretBox

    app = dashboard.app
    # An SFTP node with another encryption key stored the install's host keys.
    async with app.db.transaction() as session:
        await stored_settings.add_if_absent(
            session, hostkeys.SETTING_KEY, SecretBox(os.urandom(32)).encrypt('{"k": "x"}')
        )
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        await login(client)
        page = await client.get("/users")
    assert page.status_code == 200, page.text
    assert "SHA256:" not in page.text


@pytest.fixture
async def ipv6_dashboard(settings: Settings) -> AsyncIterator[Dashboard]:
    """SFTP on the IPv6 loopback address, the dashboard beside it."""
    settings.sftp.host = "::1"
    async for value in _dashboard(settings, frozenset({"http", "sftp"})):
        yield value


@pytest.mark.e2e
async def test_the_connect_command_works_when_the_host_is_an_ipv6_address(
    ipv6_dashboard: Dashboard, tmp_path: Path
) -> None:
    """The page showed `sftp -P 2222 user@::1`, which OpenSSH's sftp answers with its usage
    text: an IPv6 address needs brackets there."""
    sftp = require_binary("sftp")
    key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "id").write_bytes(key.export_private_key())
    (tmp_path / "id").chmod(0o600)
    await ipv6_dashboard.app.accounts.add_user(
        ipv6_dashboard.organization.id, "acme", public_keys=[key.export_public_key().decode()]
    )
    async with httpx.AsyncClient(base_url=ipv6_dashboard.base) as client:
        await login(client)
        page = await client.get("/users")
    shown = re.search(r'<pre class="command"><code>(.*?)</code></pre>', page.text)
    assert shown is not None
    command = html.unescape(shown.group(1).replace("<var>user</var>", "acme")).split()
    assert command[0] == "sftp"
    (tmp_path / "batch").write_text("ls\n")
    options = ["-i", str(tmp_path / "id"), "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
               "-o", "IdentitiesOnly=yes", "-b", str(tmp_path / "batch")]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sftp, *options, *command[1:],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (command, (out + err).decode())
