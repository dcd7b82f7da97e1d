"""`sftphook webhooks remove`: it asks first, and says plainly when nothing was removed."""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import Cli, error_line, table_rows


@pytest.fixture
def webhook(cli: Cli, cli_env: dict[str, str]) -> str:
    cli_env["SFTPHOOK_WEBHOOKS__ALLOW_HTTP"] = "true"
    cli_env["SFTPHOOK_WEBHOOKS__ALLOWED_NETWORKS"] = '["127.0.0.0/8"]'
    added = cli(
        "webhooks",
        "add",
        "--url",
        "http://127.0.0.1:9/hook",
        "--nickname",
        "partner",
        "-t",
        "file.created",
    )
    assert added.returncode == 0, added.stderr
    found = re.search(r"webhook (\S+) added", added.stdout)
    assert found is not None, added.stdout
    return found.group(1)


def _ids(cli: Cli) -> list[str]:
    return [row["id"] for row in table_rows(cli("webhooks", "list"))]


def test_without_a_terminal_it_asks_for_yes_and_removes_nothing(cli: Cli, webhook: str) -> None:
    result = cli("webhooks", "remove", webhook)
    assert result.returncode == 2
    assert error_line(result) == (
        f"error: webhook {webhook} not removed: nothing to confirm it with; "
        "run in a terminal or pass --yes"
    )
    assert _ids(cli) == [webhook]
    assert cli("webhooks", "remove", webhook, "--yes").returncode == 0
    assert _ids(cli) == []


def test_declined_at_the_terminal_it_says_so_and_exits_1(terminal, cli: Cli, webhook: str) -> None:
    term = terminal("webhooks", "remove", webhook)
    term.expect("and its delivery log? [y/N]")
    term.send("n")
    assert term.wait() == 1
    output = term.output.decode()
    assert re.search(rf"error:(\x1b\[0m)? webhook {webhook} not removed\r\n$", output), output
    assert "Aborted" not in output
    assert _ids(cli) == [webhook]


def test_confirmed_at_the_terminal_it_removes(terminal, cli: Cli, webhook: str) -> None:
    term = terminal("webhooks", "remove", webhook)
    term.expect("[y/N]")
    term.send("y")
    assert term.wait() == 0
    assert f"webhook {webhook} removed" in term.output.decode()
    assert _ids(cli) == []
