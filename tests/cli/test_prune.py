import contextlib
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sftphook.config import Settings
from tests.cli.conftest import Cli, Terminal

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


def _seed_old_events(database: Path, count: int) -> None:
    """`count` events 100 days old, in the default organization."""
    old = int(time.time() * 1000) - 100 * 86_400_000
    with contextlib.closing(sqlite3.connect(database)) as db:
        (org,) = db.execute("SELECT id FROM organizations").fetchone()
        db.executemany(
            "INSERT INTO events (id, organization_id, topic, created_at, actor_type, actor_id,"
            " path) VALUES (?, ?, 'file.created', ?, 'User', 'u', ?)",
            [(str(uuid.uuid4()), org, old, f"f{i}") for i in range(count)],
        )
        db.commit()


def test_prune_shows_a_progress_bar_on_a_terminal_and_plain_text_otherwise(
    cli: Cli, terminal: Callable[..., Terminal], settings: Settings
) -> None:
    assert cli("db", "upgrade").returncode == 0
    database = settings.data_dir / "sftphook.db"
    _seed_old_events(database, 1200)  # three batches of 500

    shown = terminal("prune")
    assert shown.wait() == 0, shown.output
    output = shown.output.decode(errors="replace")
    assert "pruning" in output
    assert "1200/1200" in output
    assert "removed 0 deliveries, 0 attempts and 1200 events" in output

    # Without a terminal: the result line alone, nothing of the bar.
    _seed_old_events(database, 3)
    out = cli("prune")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("removed 0 deliveries, 0 attempts and 3 events")
    assert "pruning" not in out.stdout + out.stderr
