"""`sftphook admins` as a script runs it: times as the other lists show them, and a clear error
when no password can be asked for."""

from __future__ import annotations

import re

from tests.cli.conftest import Cli, error_line

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_admins_list_shows_times_in_iso_8601_like_every_list(cli: Cli) -> None:
    added = cli("admins", "add", "ops", "--password-stdin", input="a fine password\n")
    assert added.returncode == 0, added.stderr
    listed = cli("admins", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split("\t") == ["name", "organizations", "created"]
    name, orgs, created = row.split("\t")
    assert (name, orgs) == ("ops", "default")
    assert ISO_UTC.match(created), created


def test_admins_add_without_a_terminal_or_password_stdin_is_a_usage_error(cli: Cli) -> None:
    for args in (["admins", "add", "ops"], ["admins", "passwd", "ops"]):
        result = cli(*args)
        assert result.returncode == 2, result.stderr
        assert "--password-stdin" in error_line(result)
    assert cli("admins", "list").stdout.splitlines()[1:] == []
