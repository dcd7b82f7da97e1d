"""`sftphook db upgrade` says which migrations it applies, each with its time, and on a terminal
which one is running."""

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from sftphook.store.database import alembic_config
from tests.cli.test_prune import _run_in_terminal

SRC = str(Path(__file__).resolve().parents[2] / "src")
CLI = "from sftphook.cli import main; main()"


def _upgrade(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _revisions(url: str) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def test_db_upgrade_lists_each_migration_it_applies(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "SFTPHOOK_DATA_DIR": str(data), "PYTHONPATH": SRC}
    url = f"sqlite+aiosqlite:///{data / 'sftphook.db'}"
    revisions = _revisions(url)
    head = revisions[-1]

    fresh = _upgrade(env)
    assert fresh.returncode == 0, fresh.stderr
    lines = fresh.stdout.splitlines()
    assert lines[0] == f"upgrading from an empty database: {len(revisions)} migration(s)"
    applied = [line.split()[0].rstrip(":") for line in lines if line.startswith("  ")]
    assert applied == revisions
    assert lines[-1] == f"database upgraded to revision {head}"

    again = _upgrade(env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"database is up to date (revision {head})\n"

    # An older schema: only the migrations after it.
    command.downgrade(alembic_config(url), revisions[-3])
    older = _upgrade(env)
    assert older.returncode == 0, older.stderr
    assert older.stdout.splitlines()[0] == f"upgrading from {revisions[-3]}: 2 migration(s)"
    applied = [x.split()[0].rstrip(":") for x in older.stdout.splitlines() if x.startswith("  ")]
    assert applied == revisions[-2:]


def test_db_upgrade_shows_the_running_migration_on_a_terminal(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "SFTPHOOK_DATA_DIR": str(data), "PYTHONPATH": SRC, "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    status, output = _run_in_terminal([sys.executable, "-c", CLI, "db", "upgrade"], env)
    assert status == 0, output
    first = _revisions(f"sqlite+aiosqlite:///{data / 'sftphook.db'}")[0]
    assert f"running {first}:" in output  # the spinner's line, while it runs
    assert f"  {first}: " in output  # once it has run


def test_db_upgrade_of_an_unreachable_database_is_one_error_line(tmp_path):
    env = {
        **os.environ,
        "SFTPHOOK_DATA_DIR": str(tmp_path / "data"),
        "SFTPHOOK_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
        "PYTHONPATH": SRC,
    }
    out = _upgrade(env)
    assert out.returncode == 1
    assert out.stderr.startswith("error: cannot open the database")
    assert "Traceback" not in out.stderr


def test_a_failing_migration_is_reported_and_nothing_of_the_upgrade_is_kept(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "SFTPHOOK_DATA_DIR": str(data), "PYTHONPATH": SRC}
    url = f"sqlite+aiosqlite:///{data / 'sftphook.db'}"
    revisions = _revisions(url)
    assert _upgrade(env).returncode == 0
    start = revisions[-3]
    command.downgrade(alembic_config(url), start)
    # Something the last migration adds, there already: that migration fails.
    with contextlib.closing(sqlite3.connect(data / "sftphook.db")) as db:
        db.execute("ALTER TABLE login_failures ADD COLUMN lifted_at INTEGER")
        db.commit()
    failed = _upgrade(env)
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"error: migration {revisions[-1]} failed: ")
    assert f"rolled back, the database is still at {start}" in failed.stderr
    assert "Traceback" not in failed.stderr
    with contextlib.closing(sqlite3.connect(data / "sftphook.db")) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(start,)]


def test_a_schema_of_a_newer_version_is_one_error_line_for_every_command(tmp_path):
    data = tmp_path / "data"
    env = {
        **os.environ,
        "SFTPHOOK_DATA_DIR": str(data),
        "SFTPHOOK_SFTP__PORT": "0",
        "SFTPHOOK_HTTP__PORT": "0",
        "PYTHONPATH": SRC,
    }
    assert _upgrade(env).returncode == 0
    with contextlib.closing(sqlite3.connect(data / "sftphook.db")) as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
        db.commit()
    for args in (["db", "upgrade"], ["users", "list"], ["serve"]):
        out = subprocess.run(
            [sys.executable, "-c", CLI, *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 1, (args, out.stderr)
        last = out.stderr.splitlines()[-1]
        assert last.startswith("error: the database's schema is at revision 0099, which"), last
        assert "Traceback" not in out.stderr, args
