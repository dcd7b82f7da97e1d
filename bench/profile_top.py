"""Summarise py-spy raw (collapsed) stacks: the functions that take the most samples.

    python bench/profile_top.py out/sftphook-small-put-aes128-gcm-0.txt [--top 15] [--match X]

Prints, per file, the top functions by self samples (where the CPU was) and by inclusive samples
(what was on the stack), line numbers folded so that one function is one row.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def fold(frame: str) -> str:
    """`send_packet (asyncssh/connection.py:1835)` -> `send_packet (asyncssh/connection.py)`."""
    return _LINE.sub(")", frame.strip())


def summarise(path: Path, thread: str = "") -> tuple[int, Counter[str], Counter[str], Counter[str]]:
    """Samples, self and inclusive counts of one thread (all when empty), and samples per thread."""
    total = 0
    threads: Counter[str] = Counter()
    self_samples: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [fold(f) for f in stack.split(";") if f.strip()]
        if frames and frames[0].startswith("thread ("):
            # py-spy --threads: "thread (TID): NAME" comes first.
            name = frames[0].partition(": ")[2] or frames[0]
            name = re.sub(r"[-_ ]?\d+$", "", name.split(" (")[0])  # pool threads as one
            threads[name] += n
            frames = frames[1:]
            if thread and name != thread:
                continue
        if not frames:
            continue
        total += n
        self_samples[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    return total, self_samples, inclusive, threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--match", default="", help="inclusive list: only frames containing this")
    p.add_argument(
        "--thread", default="", help="only this thread (py-spy --threads), e.g. MainThread"
    )
    a = p.parse_args()
    for path in a.files:
        total, self_samples, inclusive, threads = summarise(path, a.thread)
        print(f"## {path.name}: {total} samples{' in ' + a.thread if a.thread else ''}")
        if threads:
            print("threads: " + ", ".join(f"{t} {n}" for t, n in threads.most_common()))
        if not total:
            continue
        print("self:")
        for frame, n in self_samples.most_common(a.top):
            print(f"  {100 * n / total:5.1f}%  {frame}")
        print(f"inclusive{' (' + a.match + ')' if a.match else ''}:")
        shown = 0
        for frame, n in inclusive.most_common():
            if a.match and a.match not in frame:
                continue
            print(f"  {100 * n / total:5.1f}%  {frame}")
            shown += 1
            if shown >= a.top:
                break
        print()


if __name__ == "__main__":
    main()
