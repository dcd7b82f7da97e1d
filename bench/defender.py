"""What a failed SFTP login costs the brute-force defender while it holds many addresses.

    PYTHONPATH=src .venv/bin/python bench/defender.py [--addresses 100000] [--samples 200]

A scan from many addresses (or IPv6 networks) fails once from each. The defender of `245aee2`
swept all its failure records in full at every failure once it held more than 10,000
addresses; the current one keeps them in the order of their last failure and pops only the
expired ones from the front. For each size, both are filled with that many addresses, each
with one failure still inside the window, and then timed over `--samples` failures from new
addresses. A copy of the old algorithm is kept here, so both run in the same process.

Then the current defender alone takes a failure from every one of `--addresses` addresses one
after another, as the scan does, with a cap of `--cap` records (the default: the server's),
and its total time and the memory its records hold (tracemalloc) are printed.
"""

from __future__ import annotations

import argparse
import collections
import time
import tracemalloc

from sftphook.sftp.defender import MAX_ADDRESSES, Defender

THRESHOLD = 10
WINDOW = 300.0
DURATION = 900.0


class OldDefender:
    """`Defender` as of 245aee2 (failures and their sweep; bans left out: none are made here)."""

    def __init__(self, *, threshold: int, window: float, duration: float) -> None:
        self.threshold = threshold
        self.window = window
        self.duration = duration
        self._failures: dict[str, collections.deque[float]] = {}
        self._banned_until: dict[str, float] = {}

    def failed(self, address: str, now: float) -> bool:
        self._prune(now)
        failures = self._failures.setdefault(address, collections.deque())
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.threshold:
            self._banned_until[address] = now + self.duration
            failures.clear()
            return True
        return False

    def _prune(self, now: float) -> None:
        if len(self._failures) > 10_000:
            for address in [
                a for a, f in self._failures.items() if not f or f[-1] <= now - self.window
            ]:
                del self._failures[address]


def address(i: int) -> str:
    return f"2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::/64"


def per_failure(defender: OldDefender | Defender, held: int, samples: int) -> float:
    """Seconds per failure from a new address once `held` addresses have one failure each."""
    step = 1.0 / max(held, 1)  # all of them inside the window
    if isinstance(defender, OldDefender):
        # Filled directly: through `failed` the old one would take minutes to get there.
        for i in range(held):
            defender._failures[address(i)] = collections.deque([i * step])
    else:
        for i in range(held):
            defender.failed(address(i), i * step)
    start = time.perf_counter()
    for j in range(samples):
        defender.failed(address(held + j), 1.0 + j * step)
    return (time.perf_counter() - start) / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--cap", type=int, default=MAX_ADDRESSES)
    args = parser.parse_args()

    sizes = sorted(
        {n for n in (1_000, 10_000, 20_000, 50_000, args.addresses) if n <= args.addresses}
    )
    print(f"failures from new addresses, {args.samples} per size (µs per failure)")
    print(f"{'addresses held':>15} | {'245aee2':>10} | {'now':>10} | {'ratio':>8}")
    print(f"{'-' * 15}-+-{'-' * 10}-+-{'-' * 10}-+-{'-' * 8}")
    for held in sizes:
        old = per_failure(
            OldDefender(threshold=THRESHOLD, window=WINDOW, duration=DURATION), held, args.samples
        )
        new = per_failure(
            Defender(threshold=THRESHOLD, window=WINDOW, duration=DURATION, max_addresses=args.cap),
            held,
            args.samples,
        )
        print(f"{held:>15,} | {old * 1e6:>10.1f} | {new * 1e6:>10.2f} | {old / new:>7.0f}×")

    tracemalloc.start()
    defender = Defender(
        threshold=THRESHOLD, window=WINDOW, duration=DURATION, max_addresses=args.cap
    )
    start = time.perf_counter()
    for i in range(args.addresses):
        defender.failed(address(i), i / args.addresses)
    took = time.perf_counter() - start
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print()
    print(
        f"a scan of {args.addresses:,} addresses, one failure each (cap {args.cap:,}): "
        f"{took:.2f} s in all (with tracemalloc on), {took / args.addresses * 1e6:.1f} µs per "
        f"failure; {len(defender._failures):,} records held, {held / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
