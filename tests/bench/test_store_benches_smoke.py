"""Tiny runs of bench/large_replace.py, bench/event_commit.py, bench/retention.py and
bench/defender.py, so that they keep working as the storage, the store and the SFTP front's
defender change."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import POSTGRES_ADMIN_DSN, postgres_database

BENCH = Path(__file__).resolve().parents[2] / "bench"
SRC = BENCH.parent / "src"


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_large_replace_prints_both_ways_and_their_ratio(tmp_path: Path) -> None:
    out = _run(
        "large_replace.py", "--size-mb", "4", "--runs", "1", "--pause", "0", "--dir", str(tmp_path)
    )
    for way in ("no hints", "hints"):
        assert re.search(rf"^{way}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
    assert re.search(r"total time with hints / without: [\d.]+", out), out
    assert list(tmp_path.iterdir()) == []  # its temporary directory is gone


def test_retention_bench_prunes_what_it_seeded_and_prints_its_rows() -> None:
    out = _run(
        "retention.py", "--recent", "300", "--expiring", "120", "--old", "70", "--batch", "50"
    )
    for phase in (
        "alone \\(baseline\\)",
        "during prune of the old rows",
        "during prune that finds nothing",
    ):
        assert re.search(rf"^{phase}\s+\d+(\s+[\d.]+){{3}}", out, re.M), out
    assert "prune of the old rows: " in out and "removed 70 events, 120 deliveries" in out, out
    assert "prune that finds nothing: " in out and "removed 0 events, 0 deliveries" in out, out


def test_event_commit_on_sqlite_reports_latencies() -> None:
    out = _run("event_commit.py", "--events", "20")
    assert re.search(r"EventRecorder.record\(\).*median [\d.]+ ms.* over 20 events", out), out


async def test_event_commit_on_postgres_counts_two_round_trips_per_event() -> None:
    async with postgres_database():  # skips, or fails in CI, when PostgreSQL is not there
        pass
    out = _run("event_commit.py", "--events", "20", "--postgres", POSTGRES_ADMIN_DSN)
    lines = out.splitlines()
    for webhook in ("no webhook", "a webhook"):
        before = lines.index(
            next(line for line in lines if f"the version before), {webhook}" in line)
        )
        now = lines.index(next(line for line in lines if f"(this version), {webhook}" in line))
        assert "round trips per event: 2.0 " in lines[now + 1], out
        assert "round trips per event: 2.0 " not in lines[before + 1], out


def test_defender_bench_prints_both_versions_and_the_scan() -> None:
    out = _run("defender.py", "--addresses", "12000", "--samples", "20", "--cap", "5000")
    for held in ("1,000", "10,000", "12,000"):
        assert re.search(rf"^\s+{held} \|\s+[\d.]+ \|\s+[\d.]+ \|\s+\d+×$", out, re.M), out
    assert re.search(r"a scan of 12,000 addresses.* 5,000 records held", out), out
