"""What sftphook's input path costs per packet, against asyncssh's own, in-process (no network).

    .venv/bin/python bench/framing.py [--requests 50000] [--megabytes 512]

1. SFTP requests of 100 bytes, each arriving while the handler waits for it: sftphook's
   `PacketReader` (`feed`, then `next_packet`) against asyncssh's stream session and
   `SSHReader.readexactly` (the length, then the body), with the loop turn alone as a baseline.
2. The SSH connection's input buffer, used as asyncssh uses it (append a socket read, then take
   each packet off the front: its first block, the rest, the MAC), with `bytes` and with
   `InputBuffer`: reads of 256 KiB holding 32 KiB packets (an upload), and reads of one
   100-byte packet (small requests).

Prints one table; the ratios are against asyncssh's way in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from asyncssh.stream import SSHReader, SSHServerStreamSession  # noqa: E402

from sftphook.sftp.handler import PacketReader  # noqa: E402
from sftphook.sftp.wire import InputBuffer  # noqa: E402


class _Channel:
    """What both readers use of a channel."""

    logger = None

    def get_recv_window(self) -> int:
        return 2 * 1024 * 1024

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _sftp_packet(size: int) -> bytes:
    return (size - 4).to_bytes(4, "big") + os.urandom(size - 4)


async def _loop_turns(count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await asyncio.sleep(0)
    return (time.perf_counter() - started) / count


async def _packet_reader(count: int) -> float:
    reader = PacketReader(_Channel())  # type: ignore[arg-type]
    packet = _sftp_packet(100)

    async def handler() -> None:
        for _ in range(count):
            await reader.next_packet()

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    started = time.perf_counter()
    for _ in range(count):
        reader.feed(packet)
        await asyncio.sleep(0)
    await task
    return (time.perf_counter() - started) / count


async def _stream_reader(count: int) -> float:
    session: Any = SSHServerStreamSession(None, None, 3, False)
    channel = _Channel()
    session._chan = channel
    session._loop = asyncio.get_running_loop()
    session._limit = channel.get_recv_window()
    reader: SSHReader[bytes] = SSHReader(session, channel)  # type: ignore[arg-type]
    packet = _sftp_packet(100)

    async def handler() -> None:
        for _ in range(count):
            length = int.from_bytes(await reader.readexactly(4), "big")
            await reader.readexactly(length)

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    started = time.perf_counter()
    for _ in range(count):
        session.data_received(packet, None)
        await asyncio.sleep(0)
    await task
    return (time.perf_counter() - started) / count


def _parse(buf: Any, read: bytes, reads: int, packet: int) -> float:
    """Seconds per read: append it, then take its packets off the front as asyncssh does."""
    started = time.perf_counter()
    for _ in range(reads):
        buf += read
        while len(buf) >= packet:
            _first = buf[:16]
            buf = buf[16:]
            _rest = buf[: packet - 32]
            _mac = buf[packet - 32 : packet - 16]
            buf = buf[packet - 16 :]
    return (time.perf_counter() - started) / reads


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=50_000)
    p.add_argument("--megabytes", type=int, default=512)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    if a.requests < 1 or a.megabytes < 1 or a.repeat < 1:
        p.error("--requests, --megabytes and --repeat must be at least 1")

    rows: list[tuple[str, str, float, float]] = []

    def median(work: Any) -> float:
        return statistics.median(work() for _ in range(a.repeat))

    turn = median(lambda: asyncio.run(_loop_turns(a.requests)))
    stock = median(lambda: asyncio.run(_stream_reader(a.requests))) - turn
    ours = median(lambda: asyncio.run(_packet_reader(a.requests))) - turn
    rows.append(("SFTP request of 100 B (beyond a loop turn)", "us each", stock * 1e6, ours * 1e6))

    big_read = os.urandom(256 * 1024)
    reads = a.megabytes * 4
    stock = median(lambda: _parse(b"", big_read, reads, 32 * 1024 + 64)) * reads
    ours = median(lambda: _parse(InputBuffer(), big_read, reads, 32 * 1024 + 64)) * reads
    rows.append((f"{a.megabytes} MiB in reads of 256 KiB", "s in all", stock, ours))

    small_read = os.urandom(100)
    stock = median(lambda: _parse(b"", small_read, a.requests, 100))
    ours = median(lambda: _parse(InputBuffer(), small_read, a.requests, 100))
    rows.append(("a read of one 100 B packet", "us each", stock * 1e6, ours * 1e6))

    print(f"loop turn alone: {turn * 1e6:.2f} us")
    print(f"{'input path':<44} {'unit':<9} {'asyncssh':>10} {'sftphook':>10} {'ratio':>7}")
    for name, unit, theirs, mine in rows:
        print(f"{name:<44} {unit:<9} {theirs:>10.3f} {mine:>10.3f} {theirs / mine:>7.2f}")
    print("(ratio: asyncssh's time over sftphook's; above 1, sftphook's way is quicker)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
