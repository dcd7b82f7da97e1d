"""A tiny run of bench/sftp.py, so that the benchmark keeps working as the server changes."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_binary

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sftp.py"

pytestmark = pytest.mark.e2e


def _tiny_run(results: Path, *args: str) -> str:
    """bench/sftp.py with tiny sizes (1 MiB, 5 small files, 20 entries): its table."""
    for binary in ("sftp", "ssh-keygen", "sshd"):
        require_binary(binary)
    tiny = ["--quick", "--size-mb", "1", "--small-files", "5", "--ls-entries", "20"]
    proc = subprocess.run(
        [sys.executable, str(BENCH), *tiny, *args, "--json", str(results)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_bench_quick_prints_a_table_with_both_servers(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    out = _tiny_run(results)
    assert "OpenSSH s" in out and "sftphook s" in out and "ratio sftphook" in out
    for label in ("bulk put 1 MiB", "bulk get 1 MiB", "small put 5x4K", "small get 5x4K"):
        assert label in out
    assert "ls -l 20" in out
    assert "OpenSSH: cipher " in out and "sftphook: cipher " in out
    # Events are on: the uploads were recorded.
    assert "sftphook events recorded:" in out and "file.created" in out
    # How much CPU time the host took away during the run (Linux: /proc/stat).
    assert re.search(r"CPU steal during the run: \d+\.\d% of the machine's CPU time", out), out
    assert results.read_text().count('"operation"') == 5


def test_the_floor_server_answers_every_operation_from_memory(tmp_path: Path) -> None:
    """`--servers floor`: asyncssh with files in memory, the bound of any asyncssh handler."""
    results = tmp_path / "results.json"
    out = _tiny_run(results, "--servers", "openssh,floor")
    assert "floor asyncssh s" in out and "ratio floor asyncssh" in out
    # Five rows: the gets found what the puts left in memory (the bench checks the sizes and
    # counts received), and the listing directory the server made at its start.
    assert results.read_text().count('"operation"') == 5


def _load_bench() -> Any:
    """bench/sftp.py as a module (it is a script, not in a package)."""
    spec = importlib.util.spec_from_file_location("bench_sftp", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH.parent))
    sys.modules[spec.name] = bench  # (its dataclasses look their module up)
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(BENCH.parent))
        del sys.modules[spec.name]
    return bench


def test_the_steal_share_is_the_steal_counter_over_all_counters() -> None:
    bench = _load_bench()
    before = [100, 0, 50, 800, 10, 0, 5, 35, 0, 0]
    after = [160, 0, 70, 900, 10, 0, 5, 55, 7, 0]  # guest time (9th) is inside user: not added
    assert bench._steal_share(before, after) == pytest.approx(20 / 200)
    assert bench._steal_share(before, before) is None
    assert bench._steal_share(None, after) is None
    if sys.platform == "linux":
        counters = bench._cpu_times()
        assert counters is not None and len(counters) >= 8


def test_the_framing_bench_prints_its_three_rows() -> None:
    framing = BENCH.parent / "framing.py"
    proc = subprocess.run(
        [sys.executable, str(framing), "--requests", "200", "--megabytes", "1", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if re.search(r" \d+\.\d\d$", line)]
    assert [row.split("  ")[0] for row in rows] == [
        "SFTP request of 100 B (beyond a loop turn)",
        "1 MiB in reads of 256 KiB",
        "a read of one 100 B packet",
    ], proc.stdout


def test_a_run_on_a_busy_host_says_its_ratios_do_not_compare() -> None:
    bench = _load_bench()
    assert bench._steal_lines(None) == []
    (quiet,) = bench._steal_lines(0.01)
    assert quiet == "CPU steal during the run: 1.0% of the machine's CPU time"
    busy = bench._steal_lines(0.082)
    assert busy[0] == "CPU steal during the run: 8.2% of the machine's CPU time"
    assert "do not compare with a quiet run" in busy[1]
