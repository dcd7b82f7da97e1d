"""`sftphook listen`, run for real as a subprocess on a free port and read from its stdout."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import typer
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

import sftphook
from sftphook.cli import app as cli_app
from sftphook.cli.listen import Printer, build_app, serve
from sftphook.events import EventRecord, Topic
from sftphook.webhooks import payload, signing

SRC = str(Path(sftphook.__file__).resolve().parents[1])
START_TIMEOUT = 90  # the CLI imports the whole server; a busy 2-core machine is slow at that


@dataclass
class Listener:
    process: asyncio.subprocess.Process
    url: str
    banner: str

    async def block(self) -> str:
        """The lines printed for the next request, up to its `response:` line."""
        assert self.process.stdout is not None
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), 30)
            assert raw, "listen exited early: " + "".join(lines)
            line = raw.decode()
            lines.append(line)
            if line.startswith("response:") or "answered 404" in line:
                return "".join(lines)

    async def stop(self) -> tuple[int, str, str]:
        """Ctrl-C, then everything it printed after."""
        self.process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode is not None
        return self.process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def listening(*args: str, stdin: bytes | None = None) -> AsyncIterator[Listener]:
    env = {k: v for k, v in os.environ.items() if k != "SFTPHOOK_LISTEN_SECRET"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH")) if p)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from sftphook.cli import main; main()",
        "listen",
        "--port",
        "0",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        if stdin is not None:
            assert process.stdin is not None
            process.stdin.write(stdin)
            await process.stdin.drain()
            process.stdin.close()
        assert process.stdout is not None and process.stderr is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode()
        if "receiving on" not in banner:
            err = (await asyncio.wait_for(process.stderr.read(), 10)).decode()
            pytest.fail(f"listen did not start: {banner!r} {err}")
        url = banner.split("receiving on ", 1)[1].split(" ", 1)[0]
        yield Listener(process, url, banner)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.text()


def _event_body(path: str = "inbound/über naïve ✓ + more.csv") -> bytes:
    event = EventRecord(
        organization_id="org-1",
        topic=Topic.FILE_CREATED,
        actor_id="partner-acme",
        path=path,
        size=357464,
        sha256="ab" * 32,
        created_at=1591106805970,
    )
    return payload.event_payload(event, webhook_id="w-1", delivery_id="d-1", attempt_id="a-1")


def _signed(secrets: list[str], body: bytes) -> dict[str, str]:
    headers = signing.signature_headers(secrets, "d-1", int(time.time()), body)
    return {"Content-Type": "application/json", **headers}


async def test_listen_prints_and_verifies_signed_requests_and_stops_on_ctrl_c():
    secret = signing.generate_secret()
    async with listening("--secret", secret) as listener:
        assert "signatures checked with 1 secret" in listener.banner
        assert listener.url.startswith("http://127.0.0.1:") and listener.url.endswith("/")

        body = _event_body()
        headers = _signed([secret], body) | {"Authorization": "Bearer s3cr3t-token"}
        status, _ = await _post(listener.url, body, headers)
        assert status == 200
        block = await listener.block()
        assert "POST /" in block
        assert "topic:   file.created" in block
        assert "path:    inbound/über naïve ✓ + more.csv" in block
        assert f"id:      {json.loads(body)['Id']}" in block
        for name in ("X-Hub-Signature", "X-Hub-Signature-256", "webhook-id", "webhook-signature"):
            assert f"{name}: {headers[name]}" in block
        assert f"webhook-timestamp: {headers['webhook-timestamp']} (" in block
        assert '  "Topic": "file.created",' in block  # the body, pretty-printed
        assert '    "Path": "inbound/%C3%BCber+na%C3%AFve+%E2%9C%93+%2B+more.csv",' in block
        assert "signature: verified (webhook-signature)" in block
        assert "Authorization: (present, 19 characters, not shown)" in block
        assert "s3cr3t-token" not in block
        assert block.rstrip().endswith("response: 200")

        tampered = body.replace(b"partner-acme", b"partner-evil")
        status, text = await _post(listener.url, tampered, headers)
        assert status == 401 and "signature verification failed" in text
        block = await listener.block()
        assert (
            "signature: FAILED: webhook-signature does not match the secret; "
            "X-Hub-Signature-256 does not match the secret"
        ) in block
        assert "response: 401" in block

        status, _ = await _post(listener.url, b"{}", {})
        assert status == 401
        assert "FAILED: no signature header" in await listener.block()

        async with aiohttp.ClientSession() as session:
            async with session.get(listener.url) as response:
                assert response.status == 200
                assert "POST webhooks here" in await response.text()
            async with session.post(listener.url + "elsewhere", data=b"{}") as response:
                assert response.status == 404
        assert "POST /elsewhere: not /, answered 404" in await listener.block()

        code, out, err = await listener.stop()
    assert code == 0, err
    assert "sftphook listen: stopped" in out
    assert "Traceback" not in err
    everything = listener.banner + out + err
    assert secret not in everything and secret[6:] not in everything
    assert "\x1b[" not in everything  # plain output when stdout is not a terminal


async def test_listen_without_a_secret_answers_the_chosen_status_on_the_chosen_path():
    async with listening("--path", "/hooks/in", "--status", "500") as listener:
        assert "signatures not checked (no --secret)" in listener.banner
        assert listener.url.endswith("/hooks/in")
        body = json.dumps({"Topic": "webhook.ping", "Data": {"Alias": "a", "Url": "u"}}).encode()
        status, _ = await _post(listener.url, body, {"Content-Type": "application/json"})
        assert status == 500
        block = await listener.block()
        assert "topic:   webhook.ping" in block
        assert "webhook: a u" in block
        assert "signature: not checked" in block
        assert "response: 500" in block

        status, _ = await _post(listener.url, b"\xff\xfe not json", {})
        assert status == 500
        assert "(not JSON, 11 bytes)" in await listener.block()
        code, _, err = await listener.stop()
    assert code == 0, err


async def test_listen_reads_rotation_secrets_from_stdin():
    old, new = signing.generate_secret(), signing.generate_secret()
    stdin = f"{new}\n\n{old}\n".encode()
    async with listening("--secret-stdin", stdin=stdin) as listener:
        assert "signatures checked with 2 secrets" in listener.banner
        body = _event_body("a.csv")
        status, _ = await _post(listener.url, body, _signed([old], body))
        assert status == 200
        assert "signature: verified (webhook-signature)" in await listener.block()
        code, out, _ = await listener.stop()
    assert code == 0
    assert old not in out and new not in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_a_terminal_gets_colour_and_marks(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    secret = signing.generate_secret()
    screen = _Terminal()
    server = TestServer(build_app([secret], "/", 200, Printer(screen)), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        url = str(server.make_url("/"))
        body = _event_body()
        assert (await _post(url, body, _signed([secret], body)))[0] == 200
        assert (await _post(url, body, _signed([signing.generate_secret()], body)))[0] == 401
    finally:
        await server.close()
    shown = screen.getvalue()
    assert "\x1b[" in shown
    assert "✓ verified (webhook-signature)" in shown
    assert "✗ FAILED: webhook-signature does not match" in shown


async def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(typer.Exit):
            await serve("127.0.0.1", port, [], "/", 200, Printer(io.StringIO()))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--secret", "whsec_x", "--secret-stdin"], "not both"),
        (["--path", "hooks"], "--path must start with /"),
        (["--secret-stdin"], "read no secret"),
    ],
)
def test_bad_listen_options_are_refused(args, message):
    result = CliRunner().invoke(cli_app, ["listen", "--port", "0", *args], input="")
    assert result.exit_code != 0
    assert message in result.output
