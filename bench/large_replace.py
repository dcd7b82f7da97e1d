"""What a large upload that replaces a file costs the kernel, with and without the hints an
upload gives as it streams (`LocalWriteHandle.streamed`: start writing each block to disk, and
drop the cache of the file being replaced).

    .venv/bin/python bench/large_replace.py [--size-mb 512] [--runs 3] [--dir /path/on/the/disk]

Each run writes --size-mb MiB in 1 MiB blocks through the local storage's write handle, over a
file of the same size that is cached in memory, and commits (the rename into place), the two
ways in turn. It prints the time of the writes and of the commit, and the kernel CPU time.
A pause before each run lets the previous one's pages settle (`os.sync()`, then --pause s).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from sftphook.storage.local import LocalBackend

MiB = 1024 * 1024
_WRITE = {"truncate": True, "exclusive": False, "append": False, "read": False}


def run(root: Path, size_mb: int, hints: bool, block: bytes) -> tuple[float, float, float]:
    backend = LocalBackend.open(root)
    try:
        storage = backend.for_user("org", "/")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
        start = time.perf_counter()
        handle = storage.open_write("big.bin", **_WRITE)
        for i in range(size_mb):
            handle.pwrite(i * MiB, block)
            if hints:
                handle.streamed(i * MiB, MiB)
        written = time.perf_counter()
        handle.commit()
        done = time.perf_counter()
        kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime - before
    finally:
        backend.close()
    return written - start, done - written, kernel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=512)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--pause", type=float, default=5.0)
    p.add_argument("--dir", type=Path, default=None, help="a directory on the disk to measure")
    opts = p.parse_args()
    block = os.urandom(MiB)
    with tempfile.TemporaryDirectory(prefix="sftphook-replace-", dir=opts.dir) as tmp:
        root = Path(tmp)
        (root / "org").mkdir()
        with open(root / "org" / "big.bin", "wb") as f:
            for _ in range(opts.size_mb):
                f.write(block)
        results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
        for i in range(opts.runs):
            for hints in (False, True):
                (root / "org" / "big.bin").read_bytes()  # the file to replace, cached
                os.sync()
                time.sleep(opts.pause)
                results[hints].append(run(root, opts.size_mb, hints, block))
                w, c, k = results[hints][-1]
                label = "hints" if hints else "no hints"
                print(f"  run {i + 1} {label:<8}  writes {w:.3f}  commit {c:.3f}  kernel {k:.2f} s")
    print(f"\n{opts.size_mb} MiB over a cached file of the same size, median of {opts.runs}:")
    print(f"{'':<10}{'writes s':>10}{'commit s':>10}{'total s':>10}{'kernel CPU s':>14}")
    totals = {}
    for hints in (False, True):
        rows = results[hints]
        w = statistics.median(r[0] for r in rows)
        c = statistics.median(r[1] for r in rows)
        t = totals[hints] = statistics.median(r[0] + r[1] for r in rows)
        k = statistics.median(r[2] for r in rows)
        print(f"{'hints' if hints else 'no hints':<10}{w:>10.3f}{c:>10.3f}{t:>10.3f}{k:>14.2f}")
    print(f"total time with hints / without: {totals[True] / totals[False]:.2f}")


if __name__ == "__main__":
    main()
