"""Passwords and tokens given to the command line never come back, there or through the API."""

import asyncio
import logging

import httpx


async def test_cli_secrets_never_reach_output_logs_or_api_responses(cli, cli_env, http_app, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    cli_env["SFTPHOOK_LOG_LEVEL"] = "DEBUG"
    password, new_password = "Cli-Pa55word-1", "Cli-Pa55word-2"

    async def run(*args: str, input: str = ""):
        return await asyncio.to_thread(cli, *args, input=input)

    created = await run("tokens", "create", "--name", "audit")
    token = created.stdout.strip()
    results = [
        await run("users", "add", "sec", "--password-stdin", input=password + "\n"),
        await run("users", "passwd", "sec", "--password-stdin", input=new_password + "\n"),
        await run("users", "add", "sec", "--password-stdin", input=password + "\n"),  # duplicate
        await run("users", "add", "../x", "--password-stdin", input=password + "\n"),  # invalid
        await run("tokens", "list"),
    ]
    assert [r.returncode for r in results] == [0, 0, 1, 1, 0]
    assert created.stdout == token + "\n" and token not in created.stderr
    for result in results:
        for secret in (password, new_password, token):
            assert secret not in result.stdout + result.stderr, result.args

    base = f"http://127.0.0.1:{http_app.http_port}"
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        bodies = [
            (await client.get(url)).text
            for url in ("/api/v1/users", "/api/v1/users/sec", "/api/v1/tokens")
        ]
    assert '"sec"' in bodies[0]
    log_text = "\n".join(r.getMessage() for r in caplog.records)
    for text in [*bodies, log_text]:
        for secret in (password, new_password, token):
            assert secret not in text
