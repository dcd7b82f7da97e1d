"""The atheris SFTP target (fuzz_sftp_atheris.py), run for a bounded number of inputs in the
long mode only: coverage-guided fuzzing needs minutes to be worth its start-up."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import SOAK, Ledger

RUNS = 20_000
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not SOAK, reason="long mode only (SFTPHOOK_SOAK=1)")
@pytest.mark.timeout(3600)
def test_atheris_finds_no_crash_or_leak_in_the_sftp_handler(ledger: Ledger) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (pip install '.[fuzz]')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability.fuzz_sftp_atheris", f"-runs={RUNS}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    done = [line for line in proc.stderr.splitlines() if line.startswith("Done ")]
    ledger.record(
        "sftp fuzzing",
        "atheris (coverage-guided) byte streams after INIT",
        tried=RUNS if proc.returncode == 0 else 0,
        crashed=0 if proc.returncode == 0 else 1,
        note=done[-1] if done else proc.stderr[-300:],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
