"""bench/webhooks.py --quick runs end to end, so the benchmark cannot rot unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_webhooks_bench_quick_run_prints_its_table() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("BENCH_SRC", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "webhooks.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout
    for label in (
        "raw aiohttp sender",
        "(a) deliveries/s, durable store",
        "(b) close->arrival p99",
        "(c) server peak RSS (VmHWM)",
        "(d) server CPU per upload",
    ):
        assert label in out, out
    # Every delivery of each scenario arrived (the rates themselves depend on the machine).
    assert "(b) 30/30 arrived" in out, out
    assert "(c) backlog of 500: 500 delivered" in out, out
