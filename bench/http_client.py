"""HTTP client micro-benchmark: the webhook transport against an aiohttp client, per request.

Run with the project's virtualenv: `python bench/http_client.py [--requests N] [--concurrency C]`.

An aiohttp.web receiver in its own process answers 200 with an empty body. This process sends N
POSTs (a 700-byte body and the seven headers of a signed delivery) with C at once, first through
an aiohttp `ClientSession` set up and read the way the engine's former aiohttp transport did,
then through `HttpTransport`. The CPU time is this process's (user + system): the receiver's
cost is left out, so the numbers are what one request costs the sender.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection

import aiohttp
from aiohttp import web

from sftphook.webhooks.http import HttpTransport
from sftphook.webhooks.urlsafety import UrlPolicy

BODY = b'{"type":"file.created","data":{"path":"/' + b"x" * 640 + b'"}}'
HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "sftphook/0.1.0",
    "webhook-id": "dlv_01J9Z3W4K5M6N7P8Q9R0S1T2V3",
    "webhook-timestamp": "1760000000",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    "X-Hub-Signature-256": "sha256=" + "ab" * 32,
    "Authorization": "Bearer 0123456789abcdef",
}
MAX_BODY = 64 * 1024
Send = Callable[[], Awaitable[int]]


def receive(port_out: Connection) -> None:
    """The receiver process: answer every POST with an empty 200."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response()

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.send(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def aiohttp_sender(url: str, concurrency: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    connector = aiohttp.TCPConnector(limit=concurrency, use_dns_cache=False, keepalive_timeout=30)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=10),
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding",),
    )

    async def send() -> int:
        async with session.post(url, data=BODY, headers=dict(HEADERS), allow_redirects=False) as r:
            await r.content.read(MAX_BODY)
            _ = dict(r.headers.items())
            return r.status

    return send, session.close


async def http_sender(url: str, concurrency: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    transport = HttpTransport(
        UrlPolicy.from_settings(True, ["127.0.0.0/8"]), connections=concurrency
    )

    async def send() -> int:
        return (await transport.send(url, HEADERS, BODY)).status

    return send, transport.close


async def run(send: Send, requests: int, concurrency: int) -> tuple[float, float]:
    """Requests per second and CPU milliseconds per request."""
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            if await send() != 200:
                raise RuntimeError("the receiver did not answer 200")

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return requests / wall, cpu * 1000 / requests


async def bench(url: str, requests: int, concurrency: int) -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    for name, make in (("aiohttp ClientSession", aiohttp_sender), ("HttpTransport", http_sender)):
        send, close = await make(url, concurrency)
        try:
            await run(send, min(2000, requests), concurrency)  # warm up: connections, caches
            results[name] = await run(send, requests, concurrency)
        finally:
            await close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    context = mp.get_context("spawn")
    port_in, port_out = context.Pipe(duplex=False)
    receiver = context.Process(target=receive, args=(port_out,), daemon=True)
    receiver.start()
    try:
        url = f"http://127.0.0.1:{port_in.recv()}/hook"
        results = asyncio.run(bench(url, args.requests, args.concurrency))
    finally:
        receiver.terminate()
        receiver.join()
    print(f"{args.requests} POSTs of {len(BODY)} bytes, {args.concurrency} at once\n")
    print(f"{'sender':<24}{'requests/s':>12}{'CPU ms/request':>16}")
    for name, (rate, cpu) in results.items():
        print(f"{name:<24}{rate:>12,.0f}{cpu:>16.3f}")
    (old_rate, old_cpu), (new_rate, new_cpu) = results.values()
    print(f"\nHttpTransport: {new_rate / old_rate:.2f}x the requests/s,", end=" ")
    print(f"{old_cpu / new_cpu:.2f}x less CPU per request")


if __name__ == "__main__":
    main()
