"""`sftphook db upgrade` says which migrations it applies, each with its time, and on a terminal
which one is running."""

import contextlib
import sqlite3
from collections.abc import Callable

from alembic import command
from alembic.script import ScriptDirectory

from sftphook.config import Settings
from sftphook.store.database import alembic_config
from tests.cli.conftest import Cli, Terminal, error_line


def _revisions(settings: Settings) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(settings.resolved_database_url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings.resolved_database_url), revision)


def test_db_upgrade_lists_each_migration_it_applies(cli: Cli, settings: Settings) -> None:
    revisions = _revisions(settings)
    head = revisions[-1]

    fresh = cli("db", "upgrade")
    assert fresh.returncode == 0, fresh.stderr
    lines = fresh.stdout.splitlines()
    assert lines[0] == f"upgrading from an empty database: {len(revisions)} migration(s)"
    applied = [line.split()[0].rstrip(":") for line in lines if line.startswith("  ")]
    assert applied == revisions
    assert lines[-1] == f"database upgraded to revision {head}"

    again = cli("db", "upgrade")
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"database is up to date (revision {head})\n"

    # An older schema: only the migrations after it.
    _downgrade(settings, revisions[-3])
    older = cli("db", "upgrade")
    assert older.returncode == 0, older.stderr
    assert older.stdout.splitlines()[0] == f"upgrading from {revisions[-3]}: 2 migration(s)"
    applied = [x.split()[0].rstrip(":") for x in older.stdout.splitlines() if x.startswith("  ")]
    assert applied == revisions[-2:]


def test_db_upgrade_shows_the_running_migration_on_a_terminal(
    terminal: Callable[..., Terminal], settings: Settings
) -> None:
    shown = terminal("db", "upgrade")
    assert shown.wait() == 0, shown.output
    output = shown.output.decode(errors="replace")
    first = _revisions(settings)[0]
    assert f"running {first}:" in output  # the spinner's line, while it runs
    assert f"  {first}: " in output  # once it has run


def test_db_upgrade_of_an_unreachable_database_is_one_error_line(
    cli: Cli, cli_env: dict[str, str]
) -> None:
    cli_env["SFTPHOOK_DATABASE_URL"] = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    out = cli("db", "upgrade")
    assert out.returncode == 1
    assert error_line(out).startswith("error: cannot open the database")


def test_a_failing_migration_is_reported_and_nothing_of_the_upgrade_is_kept(
    cli: Cli, settings: Settings
) -> None:
    revisions = _revisions(settings)
    assert cli("db", "upgrade").returncode == 0
    start = revisions[-3]
    _downgrade(settings, start)
    # Something the last migration adds, there already: that migration fails.
    database = settings.data_dir / "sftphook.db"
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("ALTER TABLE login_failures ADD COLUMN lifted_at INTEGER")
        db.commit()
    failed = cli("db", "upgrade")
    assert failed.returncode == 1
    assert error_line(failed).startswith(f"error: migration {revisions[-1]} failed: ")
    assert f"rolled back, the database is still at {start}" in failed.stderr
    with contextlib.closing(sqlite3.connect(database)) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(start,)]


def test_a_schema_of_a_newer_version_is_one_error_line_for_every_command(
    cli: Cli, cli_env: dict[str, str], settings: Settings
) -> None:
    cli_env.update(SFTPHOOK_SFTP__PORT="0", SFTPHOOK_HTTP__PORT="0")
    assert cli("db", "upgrade").returncode == 0
    with contextlib.closing(sqlite3.connect(settings.data_dir / "sftphook.db")) as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
        db.commit()
    for args in (["db", "upgrade"], ["users", "list"], ["serve"]):
        out = cli(*args)
        assert out.returncode == 1, (args, out.stderr)
        last = out.stderr.splitlines()[-1]
        assert last.startswith("error: the database's schema is at revision 0099, which"), last
        assert "Traceback" not in out.stderr, args
