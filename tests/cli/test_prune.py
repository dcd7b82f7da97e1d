import contextlib
import os
import pty
import sqlite3
import subprocess
import sys
import time
import uuid
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


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    code = "from sftphook.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60
    )


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


def _run_in_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `argv` with stdout and stderr on a pseudo-terminal; its status and all it wrote."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(argv, env=env, stdout=terminal, stderr=terminal)
    os.close(terminal)
    output = bytearray()
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other end closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        status = process.wait(timeout=60)
    return status, output.decode(errors="replace")


def test_prune_shows_a_progress_bar_on_a_terminal_and_plain_text_otherwise(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "SFTPHOOK_DATA_DIR": str(data), "PYTHONPATH": SRC, "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    assert _cli(env, "db", "upgrade").returncode == 0
    database = next(data.glob("*.db"))
    _seed_old_events(database, 1200)  # three batches of 500

    code = "from sftphook.cli import main; main()"
    status, output = _run_in_terminal([sys.executable, "-c", code, "prune"], env)
    assert status == 0, output
    assert "pruning" in output
    assert "1200/1200" in output
    assert "removed 0 deliveries, 0 attempts and 1200 events" in output

    # Without a terminal: the result line alone, nothing of the bar.
    _seed_old_events(database, 3)
    out = _cli(env, "prune")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("removed 0 deliveries, 0 attempts and 3 events")
    assert "pruning" not in out.stdout + out.stderr
