"""Several `sftphook serve` processes on one PostgreSQL database, as a cluster runs them: each node
with its own data directory and ports, all sharing the database, the encryption key and a
storage directory."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import re
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncssh

from sftphook.app import App
from sftphook.config import Settings

SRC = Path(__file__).resolve().parents[2] / "src"
PASSWORD = "correct horse battery"
ATTEMPT_LINE = re.compile(r"webhook attempt delivery=(\S+) .* result=(\S+)")


def new_encryption_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclasses.dataclass
class Node:
    name: str
    roles: str
    process: asyncio.subprocess.Process
    log_file: Path
    sftp_port: int | None = None
    http_port: int | None = None
    stdout_drain: asyncio.Task[bytes] | None = None

    def attempts(self) -> list[tuple[str, str]]:
        """(delivery id, result) of every attempt this node logged."""
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return [(m.group(1), m.group(2)) for m in ATTEMPT_LINE.finditer(text)]

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no lease given back."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, within: float = 30.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), within)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.stdout_drain is not None:
            await asyncio.gather(self.stdout_drain, return_exceptions=True)
        return self.process.returncode or 0

    async def sftp(self) -> asyncssh.SSHClientConnection:
        assert self.sftp_port is not None, f"node {self.name} has no sftp role"
        return await asyncssh.connect(
            "127.0.0.1",
            self.sftp_port,
            username="alice",
            password=PASSWORD,
            known_hosts=None,
            client_keys=None,
            encryption_algs=["aes128-gcm@openssh.com"],
        )


class Cluster:
    """The shared settings, and the nodes started with them."""

    def __init__(self, base: Path, database_url: str, **webhook_settings: object) -> None:
        self.base = base
        self.database_url = database_url
        self.encryption_key = new_encryption_key()
        self.storage_root = base / "shared-files"
        self.storage_root.mkdir(parents=True, exist_ok=True)
        self.webhook_settings = {
            "allow_http": "true",
            "allowed_networks": '["127.0.0.0/8"]',
            "timeout": "5",
            "retry_schedule": "[0.2, 0.5, 1]",
            "retry_jitter": "0",
            **{k: str(v) for k, v in webhook_settings.items()},
        }
        self.nodes: list[Node] = []

    def env(self, data_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SFTPHOOK_")}
        env.update(
            PYTHONPATH=f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}",
            PYTHONUNBUFFERED="1",
            SFTPHOOK_DATA_DIR=str(data_dir),
            SFTPHOOK_DATABASE_URL=self.database_url,
            SFTPHOOK_ENCRYPTION_KEY=self.encryption_key,
            SFTPHOOK_STORAGE__ROOT=str(self.storage_root),
            SFTPHOOK_SFTP__HOST="127.0.0.1",
            SFTPHOOK_SFTP__PORT="0",
            SFTPHOOK_HTTP__HOST="127.0.0.1",
            SFTPHOOK_HTTP__PORT="0",
            SFTPHOOK_LOG_LEVEL="INFO",
        )
        for key, value in self.webhook_settings.items():
            env[f"SFTPHOOK_WEBHOOKS__{key.upper()}"] = value
        return env

    def settings(self) -> Settings:
        """The same settings, for an App in the test process (setup and checks)."""
        return Settings.load(
            data_dir=self.base / "admin",
            database_url=self.database_url,
            encryption_key=self.encryption_key,
            storage={"root": self.storage_root},
            webhooks={"allow_http": True, "allowed_networks": ["127.0.0.0/8"]},
        )

    async def command(self, *args: str, within: float = 60) -> tuple[int, str]:
        """Run `sftphook ARGS` with a node's environment; (exit status, stdout+stderr)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sftphook",
            *args,
            env=self.env(self.base / "admin"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), within)
        return proc.returncode or 0, out.decode(errors="replace")

    async def start(self, name: str, roles: str, *, within: float = 60) -> Node:
        data_dir = self.base / name
        data_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.base / f"{name}.log"
        log = log_file.open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sftphook",
            "serve",
            "--roles",
            roles,
            env=self.env(data_dir),
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        log.close()
        node = Node(name, roles, proc, log_file)
        self.nodes.append(node)
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(within):
                # `serve` prints its banner in one write once every role listens.
                while True:
                    line = (await proc.stdout.readline()).decode()
                    if not line:
                        raise RuntimeError(
                            f"node {name} exited: {log_file.read_text(errors='replace')[-3000:]}"
                        )
                    if "is running" in line:
                        break
            while True:
                try:
                    line = (await asyncio.wait_for(proc.stdout.readline(), 0.3)).decode()
                except TimeoutError:
                    break
                if not line:
                    break
                if m := re.match(r"\s+SFTP\s+\S+:(\d+)", line):
                    node.sftp_port = int(m.group(1))
                if m := re.match(r"\s+HTTP\s+http://[^:]+:(\d+)", line):
                    node.http_port = int(m.group(1))
        except BaseException:
            await node.kill()
            raise
        # Keep reading stdout so the node never blocks on a full pipe.
        node.stdout_drain = asyncio.get_running_loop().create_task(proc.stdout.read())
        return node

    async def stop_all(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.nodes))


async def prepare(cluster: Cluster, receiver_urls: Sequence[str]) -> tuple[App, str, list[str]]:
    """Schema, an SFTP user and one webhook per URL, through an App in this process that uses the
    cluster's settings; (app, organization id, webhook signing secrets)."""
    app = App(cluster.settings())
    await app.prepare()
    org = (await app.accounts.resolve_organization(None)).id
    await app.accounts.add_user(org, "alice", password=PASSWORD)
    signing_secrets = []
    for i, url in enumerate(receiver_urls):
        _, secret = await app.webhooks.create(
            org, nickname=f"hook-{i}", url=url, topics=["file.created"]
        )
        signing_secrets.append(secret)
    return app, org, signing_secrets
