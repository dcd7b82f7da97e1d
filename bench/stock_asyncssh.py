"""A stock asyncssh SFTP server (its default handler, chrooted): the baseline for bench/sftp.py.

Usage: stock_asyncssh.py PORT ROOT HOST_KEY AUTHORIZED_KEYS [CIPHER,...]

With BENCH_COALESCE=1 in the environment, the SSH packets one event-loop turn produces leave in
one socket write instead of one write each: the experiment behind docs/performance.md's finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

import asyncssh
from asyncssh.connection import SSHConnection


def coalesce_writes() -> None:
    """Patch asyncssh so that the packets of one loop turn go out in one `transport.write`."""

    def send(self: Any, data: bytes) -> None:
        pending: list[bytes] | None = getattr(self, "_bench_pending", None)
        if pending is None:
            pending = self._bench_pending = []
        if not pending:
            self._loop.call_soon(flush, self)
        pending.append(data)

    def flush(self: Any) -> None:
        data = b"".join(self._bench_pending)
        self._bench_pending.clear()
        if self._transport:
            with contextlib.suppress(ConnectionError):
                self._transport.write(data)

    SSHConnection._send = send  # type: ignore[method-assign]


async def serve(port: int, root: str, host_key: str, authorized: str, ciphers: list[str]) -> None:
    def sftp_factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(chan, chroot=root.encode())

    options: dict[str, object] = {}
    if ciphers:
        options["encryption_algs"] = ciphers
    await asyncssh.listen(
        "127.0.0.1",
        port,
        server_host_keys=[host_key],
        authorized_client_keys=authorized,
        sftp_factory=sftp_factory,
        allow_scp=True,
        **options,
    )
    await asyncio.Event().wait()


def main() -> None:
    port, root, host_key, authorized = sys.argv[1:5]
    ciphers = sys.argv[5].split(",") if len(sys.argv) > 5 and sys.argv[5] else []
    if os.environ.get("BENCH_COALESCE") == "1":
        coalesce_writes()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(int(port), root, host_key, authorized, ciphers))


if __name__ == "__main__":
    main()
