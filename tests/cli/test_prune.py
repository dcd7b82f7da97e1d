import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_prune_dry_run_reports_and_changes_nothing(tmp_path):
    env = {**os.environ, "SFTPHOOK_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": SRC}
    code = "from sftphook.cli import main; main()"
    out = subprocess.run(
        [sys.executable, "-c", code, "prune", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "would remove 0 deliveries, 0 attempts and 0 events" in out.stdout
    assert "deliveries 30 days, events 90 days" in out.stdout
