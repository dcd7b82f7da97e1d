"""`sftphook listen`: a local receiver that prints each webhook request and checks its signature."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TextIO
from urllib.parse import unquote_plus

import typer
from aiohttp import web
from rich.console import Console
from rich.json import JSON
from rich.text import Text

from sftphook.cli import context
from sftphook.receiver import InvalidSignature, check_signature

MAX_BODY = 16 * 1024 * 1024
MAX_SHOWN_BODY = 64 * 1024
SHOWN_HEADERS = (
    "Content-Type",
    "User-Agent",
    "X-Hub-Signature",
    "X-Hub-Signature-256",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
)


@dataclass(frozen=True)
class Verdict:
    """What the listener concluded about one request's signature."""

    checked: bool
    verified_by: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.verified_by is not None


def judge(secrets: Sequence[str], body: bytes, headers: Any, now: float) -> Verdict:
    if not secrets:
        return Verdict(checked=False)
    try:
        return Verdict(checked=True, verified_by=check_signature(secrets, body, headers, now=now))
    except InvalidSignature as exc:
        return Verdict(checked=True, reason=str(exc))


def summary(body: bytes) -> tuple[Any, list[tuple[str, str]]]:
    """The parsed body (None when it is not JSON) and the lines worth reading first."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, []
    if not isinstance(data, dict):
        return data, []
    lines: list[tuple[str, str]] = []
    if isinstance(data.get("Topic"), str):
        lines.append(("topic", data["Topic"]))
    if "Id" in data:
        lines.append(("id", str(data["Id"])))
    payload = data.get("Data")
    if isinstance(payload, dict):
        if isinstance(payload.get("Path"), str):
            lines.append(("path", unquote_plus(payload["Path"])))
        elif isinstance(payload.get("Url"), str):
            lines.append(("webhook", f"{payload.get('Alias', '')} {payload['Url']}".strip()))
    previous = data.get("PreviousData")
    if isinstance(previous, dict) and isinstance(previous.get("Path"), str):
        lines.append(("from", unquote_plus(previous["Path"])))
    actor = data.get("Actor")
    if isinstance(actor, dict) and "Id" in actor:
        lines.append(("actor", f"{actor.get('Type', '')} {actor['Id']}".strip()))
    return data, lines


class Printer:
    """Writes one block per request: coloured on a terminal, plain text otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._console = Console(file=stream, highlight=False) if stream.isatty() else None

    def line(self, text: str, style: str | None = None) -> None:
        if self._console is not None:
            # Long signatures wrap where the terminal wraps them, not where Rich would.
            self._console.print(Text(text, style=style or ""), soft_wrap=True)
        else:
            print(text, file=self._stream, flush=True)

    def request(
        self,
        request: web.BaseRequest,
        body: bytes,
        verdict: Verdict,
        status: int,
        received_at: float,
    ) -> None:
        stamp = datetime.fromtimestamp(received_at).astimezone().isoformat(timespec="milliseconds")
        self.line(f"── {stamp}  {request.method} {request.path_qs}  from {request.remote}", "bold")
        data, lines = summary(body)
        for label, value in lines:
            self.line(f"{label + ':':<8} {value}", "cyan" if label in ("topic", "path") else None)
        for name in SHOWN_HEADERS:
            header = request.headers.get(name)
            if header is None:
                continue
            if name == "webhook-timestamp" and header.isdigit():
                age = round(received_at - int(header))
                header += f" ({age} s ago)" if age >= 0 else f" ({-age} s in the future)"
            self.line(f"{name}: {header}", "dim")
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            # A credential: say that it came, never what it is.
            shown = f"(present, {len(authorization)} characters, not shown)"
            self.line(f"Authorization: {shown}", "dim")
        self._body(data, body)
        self._verdict(verdict)
        self.line(f"response: {status}", "green" if 200 <= status < 300 else "yellow")
        self.line("")

    def _body(self, data: Any, body: bytes) -> None:
        if not body:
            self.line("(empty body)", "dim")
        elif data is not None:
            pretty = json.dumps(data, indent=2, ensure_ascii=False)
            if self._console is not None:
                self._console.print(JSON(pretty, indent=2, ensure_ascii=False))
            else:
                self.line(pretty)
        else:
            shown = body[:MAX_SHOWN_BODY].decode("utf-8", "replace")
            if len(body) > MAX_SHOWN_BODY:
                shown += f"\n… ({len(body) - MAX_SHOWN_BODY} more bytes)"
            self.line(f"(not JSON, {len(body)} bytes)\n{shown}")

    def _verdict(self, verdict: Verdict) -> None:
        fancy = self._console is not None
        if not verdict.checked:
            self.line("signature: not checked (start with --secret to check it)", "yellow")
        elif verdict.ok:
            mark = "✓ " if fancy else ""
            self.line(f"signature: {mark}verified ({verdict.verified_by})", "bold green")
        else:
            mark = "✗ " if fancy else ""
            self.line(f"signature: {mark}FAILED: {verdict.reason}", "bold red")


def build_app(
    secrets: Sequence[str],
    path: str,
    status: int,
    printer: Printer,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The receiver: POSTs to `path` are printed and answered `status`, or 401 when a secret
    was given and the signature does not verify (so the delivery log shows the failure)."""

    async def receive(request: web.Request) -> web.StreamResponse:
        if request.path != path:
            printer.line(f"── {request.method} {request.path_qs}: not {path}, answered 404", "dim")
            return web.Response(status=404, text=f"sftphook listen receives on {path}\n")
        if request.method in ("GET", "HEAD"):
            return web.Response(text="sftphook listen is running: POST webhooks here\n")
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"}, text="POST only\n")
        body = await request.read()
        received_at = clock()
        verdict = judge(secrets, body, request.headers, received_at)
        answer = 401 if verdict.checked and not verdict.ok else status
        printer.request(request, body, verdict, answer, received_at)
        text = "signature verification failed\n" if answer == 401 else "received\n"
        return web.Response(status=answer, text=text)

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


async def serve(
    host: str,
    port: int,
    secrets: Sequence[str],
    path: str,
    status: int,
    printer: Printer,
) -> None:
    """Run until SIGINT or SIGTERM, then stop accepting and close open connections."""
    runner = web.AppRunner(
        build_app(secrets, path, status, printer), access_log=None, shutdown_timeout=5.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            context.fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        bound = runner.addresses[0]
        shown_host = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        checked = (
            f"signatures checked with {len(secrets)} secret{'s' if len(secrets) > 1 else ''}"
            if secrets
            else "signatures not checked (no --secret)"
        )
        printer.line(
            f"sftphook listen: receiving on http://{shown_host}:{bound[1]}{path} ({checked}; "
            "Ctrl-C stops)",
            "bold",
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    printer.line("sftphook listen: stopped")


def _read_secrets(from_stdin: bool, given: list[str] | None) -> list[str]:
    if from_stdin and given:
        context.fail("give the secret with --secret or with --secret-stdin, not both")
    if not from_stdin:
        return [s.strip() for s in given or [] if s.strip()]
    if sys.stdin.isatty():
        secrets = [getpass.getpass("signing secret: ").strip()]
    else:
        secrets = [line.strip() for line in sys.stdin.read().splitlines()]
    secrets = [s for s in secrets if s]
    if not secrets:
        context.fail("--secret-stdin read no secret")
    return secrets


def listen(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 9000,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help="The webhook's signing secret (whsec_…) to check signatures with; repeat it "
            "for the old and new secret of a rotation.",
            envvar="SFTPHOOK_LISTEN_SECRET",
            show_envvar=True,
        ),
    ] = None,
    secret_stdin: Annotated[
        bool,
        typer.Option(
            "--secret-stdin",
            help="Read the signing secret(s) from standard input, one a line (keeps them out "
            "of the shell history and the process list).",
        ),
    ] = False,
    path: Annotated[str, typer.Option(help="The path webhooks are POSTed to.")] = "/",
    status: Annotated[
        int,
        typer.Option(
            min=200,
            max=599,
            help="Status to answer verified (or unchecked) requests with: 500 or 429 to see "
            "retries, 410 to see the webhook paused.",
        ),
    ] = 200,
) -> None:
    """Receive webhooks locally: print each request and check its signature."""
    if not path.startswith("/"):
        context.fail("--path must start with /")
    secrets = _read_secrets(secret_stdin, secret)
    printer = Printer(sys.stdout)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, port, secrets, path, status, printer))
