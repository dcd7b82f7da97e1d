"""`sftphook audit list` and `sftphook orgs set-notice-email`, run as separate processes."""

from __future__ import annotations

from tests.cli.conftest import Cli


def _rows(output: str) -> list[list[str]]:
    lines = output.splitlines()
    assert lines[0].split("\t") == [
        "time",
        "organization",
        "actor",
        "action",
        "target",
        "details",
        "id",
    ]
    return [line.split("\t") for line in lines[1:]]


def test_cli_actions_are_listed_with_the_cli_as_actor(cli: Cli) -> None:
    assert (
        cli("users", "add", "partner-c", "--password-stdin", input="password-xyz-1\n").returncode
        == 0
    )
    assert cli("users", "disable", "partner-c").returncode == 0
    set_email = cli("orgs", "set-notice-email", "default", "Ops <ops@example.com>")
    assert set_email.returncode == 0, set_email.stderr
    assert "owner notices of default go to Ops <ops@example.com>" in set_email.stdout
    orgs = cli("orgs", "list").stdout.splitlines()
    assert orgs[1].split("\t")[3] == "Ops <ops@example.com>"

    listed = cli("audit", "list")
    assert listed.returncode == 0, listed.stderr
    rows = _rows(listed.stdout)
    assert [r[3] for r in rows] == ["organization.updated", "user.disabled", "user.added"]
    assert all(r[1] == "default" and r[2] == "cli:cli" for r in rows)
    assert rows[2][4] == "user:partner-c"
    assert "password-xyz-1" not in listed.stdout

    only = _rows(cli("audit", "list", "--org", "default", "--action", "user.*").stdout)
    assert [r[3] for r in only] == ["user.disabled", "user.added"]
    one = _rows(cli("audit", "list", "--limit", "1").stdout)
    assert [r[3] for r in one] == ["organization.updated"]


def test_bad_notice_address_and_unknown_org_are_errors(cli: Cli) -> None:
    bad = cli("orgs", "set-notice-email", "default", "not an address")
    assert bad.returncode == 1 and "email addresses" in bad.stderr
    missing = cli("audit", "list", "--org", "nope")
    assert missing.returncode == 1 and "no organization named 'nope'" in missing.stderr
    cleared = cli("orgs", "set-notice-email", "default", "")
    assert cleared.returncode == 0 and "no longer sent" in cleared.stdout
