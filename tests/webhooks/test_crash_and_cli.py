"""`sftphook serve` killed with SIGKILL between an event's commit and its delivery: after a
restart the delivery completes. Driven through the CLI, as an operator would."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from standardwebhooks import Webhook as StandardWebhook
from typer.testing import CliRunner

from sftphook.app import App
from sftphook.cli.main import app as cli_app
from sftphook.config import Settings
from sftphook.events import EventRecord, Topic
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.e2e

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": SRC,
            "SFTPHOOK_DATA_DIR": str(data_dir),
            "SFTPHOOK_HTTP__HOST": "127.0.0.1",
            "SFTPHOOK_HTTP__PORT": "0",
            "SFTPHOOK_WEBHOOKS__ALLOW_HTTP": "true",
            "SFTPHOOK_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
            "SFTPHOOK_WEBHOOKS__RETRY_SCHEDULE": "[0.3, 0.3]",
            "SFTPHOOK_WEBHOOKS__TIMEOUT": "1.5",
            "SFTPHOOK_WEBHOOKS__LEASE_SECONDS": "2",
        }
    )
    return env


def _invoke(env: dict[str, str], args: tuple[str, ...]) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args), env=env)
    return result.exit_code, result.output


async def _cli(env: dict[str, str], *args: str, code: int = 0) -> str:
    """The CLI in this process (a thread, since commands run their own event loop)."""
    exit_code, output = await asyncio.to_thread(_invoke, env, args)
    assert exit_code == code, (args, output)
    return output


async def _record_event(env: dict[str, str]) -> str:
    """Commit an event to the server's store from another App, as the SFTP front would."""
    settings = Settings.load(
        data_dir=Path(env["SFTPHOOK_DATA_DIR"]),
        webhooks={"allow_http": True, "allowed_networks": ["127.0.0.0/8"]},
    )
    app = App(settings)
    try:
        await app.prepare()
        org = (await app.accounts.resolve_organization(None)).id
        event = EventRecord(
            organization_id=org,
            topic=Topic.FILE_CREATED,
            actor_id="partner",
            path="inbound/report.csv",
            size=7,
        )
        await app.recorder.record(event)
    finally:
        await app.db.close()
    return event.id


async def _serve(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from sftphook.cli import main; main()",
        "serve",
        "--roles",
        "worker",
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_sigkill_between_event_and_delivery_then_restart_delivers(tmp_path):
    receiver = Receiver()
    calls = {"n": 0}

    async def hang_first(request, received):
        calls["n"] += 1
        if calls["n"] == 1:
            await asyncio.sleep(30)
        return web.Response(text="ok")

    receiver.behaviour = hang_first
    await receiver.start()
    env = _env(tmp_path / "data")
    log = tmp_path / "serve.log"
    server = None
    try:
        out = await _cli(
            env,
            "webhooks",
            "add",
            "--url",
            receiver.url,
            "--nickname",
            "crash",
            "--topic",
            "file.created",
        )
        webhook_id = re.search(r"webhook (\S+) added", out).group(1)
        secret = re.search(r"signing secret: (whsec_\S+)", out).group(1)
        listed = await _cli(env, "webhooks", "list")
        assert webhook_id in listed and secret not in listed
        assert secret not in await _cli(env, "webhooks", "show", webhook_id)

        server = await _serve(env, log)
        event_id = await _record_event(env)
        (first,) = await receiver.wait_for(1, within=20)
        assert json.loads(first.body)["Id"] == event_id
        server.send_signal(signal.SIGKILL)  # mid-delivery: no answer was recorded
        await server.wait()
        server = None

        pending = await _cli(env, "webhooks", "deliveries", webhook_id)
        assert "pending" in pending and "succeeded" not in pending

        server = await _serve(env, log)
        got = await receiver.wait_for(2, within=20)
        again = got[1]
        assert json.loads(again.body)["Id"] == event_id
        assert again.headers["webhook-id"] == first.headers["webhook-id"]
        StandardWebhook(secret).verify(again.body, again.headers)

        for _ in range(100):
            listing = await _cli(env, "webhooks", "deliveries", webhook_id, "--status", "succeeded")
            if "succeeded" in listing:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the delivery never succeeded")

        pinged = await _cli(env, "webhooks", "ping", webhook_id)
        assert "delivered: HTTP 200" in pinged
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 20) == 0
        server = None
        text = log.read_text()
        assert "webhook attempt" in text and secret not in text
    finally:
        if server is not None:
            server.kill()
            await server.wait()
        await receiver.stop()


async def test_cli_pause_resume_rotate_and_bulk_redeliver(tmp_path, receiver):
    env = _env(tmp_path / "data")
    out = await _cli(
        env,
        "webhooks",
        "add",
        "--url",
        receiver.url,
        "-n",
        "c",
        "-t",
        "file.created",
        "--filter",
        "Path starts_with inbound/",
        "--authorization",
        "Bearer cli-secret",
    )
    webhook_id = re.search(r"webhook (\S+) added", out).group(1)
    shown = await _cli(env, "webhooks", "show", webhook_id)
    assert "Bearer ***" in shown and "cli-secret" not in shown and "starts_with" in shown
    assert "paused" in await _cli(env, "webhooks", "pause", webhook_id)
    assert "0 held deliveries skipped" in await _cli(
        env, "webhooks", "resume", webhook_id, "--skip-held"
    )
    rotated = await _cli(env, "webhooks", "rotate-secret", webhook_id, "--grace", "60")
    assert "new signing secret: whsec_" in rotated and "also signs until" in rotated
    assert "0 failed deliveries queued again" in await _cli(
        env, "webhooks", "redeliver", "--webhook", webhook_id
    )
    assert "removed" in await _cli(env, "webhooks", "remove", webhook_id, "--yes")
    assert "no webhook" in await _cli(env, "webhooks", "show", webhook_id, code=1)
