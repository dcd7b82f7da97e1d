"""A stock asyncssh SFTP server (its default handler, chrooted): the baseline for bench/sftp.py.

Usage: stock_asyncssh.py PORT ROOT HOST_KEY AUTHORIZED_KEYS [CIPHER,...]
(BENCH_EXPERIMENTS=coalesce applies bench/experiments.py's patch.)
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable

import asyncssh
import experiments


async def serve(
    port: int,
    host_key: str,
    authorized: str,
    ciphers: list[str],
    sftp_factory: Callable[[asyncssh.SSHServerChannel], asyncssh.SFTPServer],
    **options: object,
) -> None:
    """Listen on 127.0.0.1:`port` with `sftp_factory`'s handler until stopped (also used by
    bench/floor_asyncssh.py)."""
    if ciphers:
        options["encryption_algs"] = ciphers
    await asyncssh.listen(
        "127.0.0.1",
        port,
        server_host_keys=[host_key],
        authorized_client_keys=authorized,
        sftp_factory=sftp_factory,
        **options,
    )
    await asyncio.Event().wait()


def main() -> None:
    port, root, host_key, authorized = sys.argv[1:5]
    ciphers = sys.argv[5].split(",") if len(sys.argv) > 5 and sys.argv[5] else []
    experiments.apply()

    def sftp_factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(chan, chroot=root.encode())

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(int(port), host_key, authorized, ciphers, sftp_factory, allow_scp=True))


if __name__ == "__main__":
    main()
