"""A tiny run of bench/sftp.py, so that the benchmark keeps working as the server changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_binary

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sftp.py"

pytestmark = pytest.mark.e2e


def test_bench_quick_prints_a_table_with_both_servers(tmp_path: Path) -> None:
    for binary in ("sftp", "ssh-keygen", "sshd"):
        require_binary(binary)
    results = tmp_path / "results.json"
    args = ["--quick", "--size-mb", "1", "--small-files", "5", "--ls-entries", "20"]
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--json", str(results)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "OpenSSH s" in out and "sftphook s" in out and "ratio sftphook" in out
    for label in ("bulk put 1 MiB", "bulk get 1 MiB", "small put 5x4K", "small get 5x4K"):
        assert label in out
    assert "ls -l 20" in out
    assert "OpenSSH: cipher " in out and "sftphook: cipher " in out
    # Events are on: the uploads were recorded.
    assert "sftphook events recorded:" in out and "file.created" in out
    assert results.read_text().count('"operation"') == 5
