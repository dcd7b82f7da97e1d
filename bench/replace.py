"""What replacing a file costs the call that replaces it: a rename over an existing 4 KiB file,
as an upload's commit does, with and without a descriptor holding the old file across the
rename (`storage/spares.py` `SpareFiles.hold`; the old file is then freed at that descriptor's
close, on the spare-files thread, after the client has its reply).

    .venv/bin/python bench/replace.py [--files 1000] [--dir /path/on/the/disk/to/measure]

Prints the median and total time of the renames each way, and what the later closes cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

O_PATH = getattr(os, "O_PATH", 0)


def prepare(root: Path, tag: str, files: int) -> None:
    for i in range(files):
        for side in ("new", "old"):
            with open(root / side / f"{tag}{i}", "wb") as f:
                f.write(b"x" * 4096)
    os.sync()


def replace(root: Path, tag: str, files: int, *, hold: bool) -> tuple[list[float], float]:
    spent: list[float] = []
    held: list[int] = []
    for i in range(files):
        started = time.perf_counter()
        if hold:
            held.append(os.open(root / "old" / f"{tag}{i}", O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC))
        os.rename(root / "new" / f"{tag}{i}", root / "old" / f"{tag}{i}")
        spent.append(time.perf_counter() - started)
    started = time.perf_counter()
    for fd in held:
        os.close(fd)
    return spent, time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--dir", type=Path, default=None, help="where to make the files (default: tmp)")
    a = p.parse_args()
    if not O_PATH:
        raise SystemExit("O_PATH is Linux-only")
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        root = Path(tmp)
        (root / "new").mkdir()
        (root / "old").mkdir()
        print(f"{'rename over a file':<32} {'median us':>10} {'total ms':>9} {'closes ms':>10}")
        for round_ in range(2):
            for hold in (False, True):
                tag = f"{round_}{int(hold)}-"
                prepare(root, tag, a.files)
                spent, closes = replace(root, tag, a.files, hold=hold)
                label = "old file held (O_PATH)" if hold else "plain (freed in the rename)"
                print(
                    f"{label:<32} {statistics.median(spent) * 1e6:>10.1f}"
                    f" {sum(spent) * 1e3:>9.1f} {closes * 1e3:>10.1f}"
                )


if __name__ == "__main__":
    main()
