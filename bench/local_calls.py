"""What the local storage's calls cost in-process, without SSH: `open_write` (with its commit) and
`stat` of files two directories down, as a small-file upload and download make them.

    .venv/bin/python bench/local_calls.py [--files 2000] [--dir /path/on/the/disk/to/measure]

Each call is confined as the server does it (walked one directory at a time with O_NOFOLLOW);
prints the median of each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sftphook.storage.local import LocalBackend  # noqa: E402

WRITE = {"truncate": True, "exclusive": False, "append": False, "read": False}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--dir", type=Path, default=None, help="where to make the files (default: tmp)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        root = Path(tmp)
        backend = LocalBackend.open(root)
        try:
            storage = backend.for_user("org", "/")
            (root / "org" / "in" / "small").mkdir(parents=True)
            time.sleep(0.2)  # the ready files are made
            opened: list[float] = []
            for i in range(a.files):
                started = time.perf_counter()
                handle = storage.open_write(f"in/small/f{i}", **WRITE)
                opened.append(time.perf_counter() - started)
                handle.pwrite(0, b"x" * 4096)
                handle.commit()
                if i % 8 == 0:
                    time.sleep(0.001)  # as a client's round trips leave the spare files' thread
            stats: list[float] = []
            for i in range(a.files):
                started = time.perf_counter()
                storage.stat(f"in/small/f{i}")
                stats.append(time.perf_counter() - started)
            storage.close()
        finally:
            backend.close()
    print(f"open_write median {statistics.median(opened) * 1e6:.1f} us")
    print(f"stat       median {statistics.median(stats) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
