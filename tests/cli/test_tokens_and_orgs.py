import asyncio

import httpx

from tests.cli.conftest import error_line


async def test_token_created_on_the_command_line_works_until_revoked(cli, http_app):
    created = await asyncio.to_thread(cli, "tokens", "create", "--name", "deploy")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n" and token.startswith("shk_")
    assert "shown once" in created.stderr

    base = f"http://127.0.0.1:{http_app.http_port}"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:
        assert (await client.get("/api/v1/users")).status_code == 200

        listed = await asyncio.to_thread(cli, "tokens", "list")
        assert listed.returncode == 0 and token not in listed.stdout
        header, row = listed.stdout.splitlines()
        fields = dict(zip(header.split("\t"), row.split("\t"), strict=True))
        assert fields["name"] == "deploy" and fields["revoked"] == ""
        assert token.startswith(fields["prefix"].rstrip("…"))

        revoked = await asyncio.to_thread(cli, "tokens", "revoke", fields["id"])
        assert revoked.returncode == 0, revoked.stderr
        assert (await client.get("/api/v1/users")).status_code == 401


async def test_organizations_scope_users_and_tokens(cli, app):
    assert cli("orgs", "add", "beta").returncode == 0
    dup = cli("orgs", "add", "beta")
    assert dup.returncode == 1 and "already exists" in error_line(dup)
    names = [line.split("\t")[0] for line in cli("orgs", "list").stdout.splitlines()[1:]]
    assert names == ["default", "beta"]

    added = cli(
        "users", "add", "b-user", "--org", "beta", "--password-stdin", input="pass-word-b\n"
    )
    assert added.returncode == 0, added.stderr
    assert cli("users", "list").stdout.splitlines()[1:] == []  # the default organization's
    beta = await app.accounts.resolve_organization("beta")
    assert [u.username for u in await app.accounts.list_users(beta.id)] == ["b-user"]

    assert cli("tokens", "create", "--org", "beta").returncode == 0
    [token] = await app.accounts.list_tokens(beta.id)
    # Another organization's token is "not found", not revoked.
    wrong = cli("tokens", "revoke", token.id)
    assert wrong.returncode == 1 and "no token" in error_line(wrong)
    [token] = await app.accounts.list_tokens(beta.id)
    assert token.revoked_at is None
