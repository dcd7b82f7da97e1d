"""`sftphook webhooks add --type … / update / show`: endpoint types and per-webhook tuning from
the command line (the command in this process: dozens of runs, each a fresh App)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from typer.testing import CliRunner

from sftphook.cli.main import app as cli_app


@dataclasses.dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(cli_env: dict[str, str]):
    env = {
        **cli_env,
        "SFTPHOOK_WEBHOOKS__ALLOW_HTTP": "true",
        "SFTPHOOK_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "SFTPHOOK_SMTP__HOST": "127.0.0.1",
        "COLUMNS": "200",
    }

    def invoke(*args: str, input: str | None = None) -> Ran:
        result = CliRunner().invoke(cli_app, list(args), env=env, input=input)
        return Ran(result.exit_code, result.stdout, result.stderr)

    return invoke


def _added(result: Ran) -> str:
    assert result.returncode == 0, result.stderr
    match = re.search(r"webhook (\S+) added", result.stdout)
    assert match is not None
    return match.group(1)


def test_add_slack_with_tuning_then_update_and_reset(run):
    hook = _added(
        run(
            "webhooks", "add", "--type", "slack", "--url", "http://127.0.0.1:9/services/x",
            "--nickname", "ops", "--topic", "file.created", "--timeout", "4",
            "--retry-schedule", "5s, 5m", "--max-concurrency", "3", "--rate-limit", "2.5",
        )
    )  # fmt: skip
    shown = run("webhooks", "show", hook)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert re.search(r"type\s+│?\s*slack", out), out
    assert re.search(r"retry schedule\s+│?\s*5 s, 300 s", out), out
    assert re.search(r"timeout\s+│?\s*4 s\b", out) and "2.5/s" in out
    assert re.search(r"max concurrency\s+│?\s*3\b", out)

    updated = run("webhooks", "update", hook, "--type", "teams", "--reset", "timeout")
    assert updated.returncode == 0, updated.stderr
    assert re.search(r"timeout\s+│?\s*10 s \(default\)", updated.stdout), updated.stdout
    assert re.search(r"type\s+│?\s*teams", updated.stdout)
    listed = run("webhooks", "list").stdout
    assert "teams" in listed


def test_add_prints_a_signing_secret_only_for_a_webhook_that_signs(run):
    webhook = run(
        "webhooks", "add", "--url", "http://127.0.0.1:9/hook", "-n", "app", "-t", "file.created"
    )
    assert re.search(r"^signing secret: whsec_\S+$", webhook.stdout, re.M), webhook.stdout
    for kind, url in (("slack", "http://127.0.0.1:9/services/x"), ("email", "ops@example.com")):
        added = run(
            "webhooks", "add", "--type", kind, "--url", url, "-n", kind, "-t", "file.created"
        )
        _added(added)
        assert "whsec_" not in added.stdout and "signing secret:" not in added.stdout
        assert f"its requests are not signed ({kind})" in added.stdout
        rotated = run("webhooks", "rotate-secret", _added(added))
        assert rotated.returncode == 0, rotated.stderr
        assert re.search(r"^new signing secret: whsec_\S+$", rotated.stdout, re.M)
        assert f"not signed while it is a {kind} endpoint" in rotated.stdout


def test_add_email_shows_recipients(run):
    hook = _added(
        run(
            "webhooks", "add", "--type", "email", "--nickname", "mail", "--topic", "file.created",
            "--url", "ops@example.com, Jane <jane@example.com>",
        )
    )  # fmt: skip
    out = run("webhooks", "show", hook).stdout
    assert "recipients" in out and "Jane <jane@example.com>" in out
    assert re.search(r"rate limit\s+│?\s*no limit \(default\)", out), out


@pytest.mark.parametrize(
    "extra",
    [
        ["--type", "pager"],
        ["--type", "email", "--url", "not-an-address"],
        ["--timeout", "0"],
        ["--rate-limit", "0"],
        ["--max-concurrency", "0"],
        ["--retry-schedule", "5, soon"],
        ["--type", "slack", "--url", "https://10.0.0.1/services/x"],
        ["--filter", "Path"],  # not FIELD OPERATOR VALUE: it was a traceback
    ],
)
def test_bad_values_are_refused_and_nothing_is_added(run, extra):
    args = ["webhooks", "add", "--url", "http://127.0.0.1:9/h", "-n", "x", "-t", "file.created"]
    result = run(*args, *extra)
    assert result.returncode != 0
    assert "error" in result.stderr.lower()
    assert "x" not in run("webhooks", "list").stdout.split()


def test_update_refuses_an_out_of_range_value_and_keeps_the_old_one(run):
    hook = _added(
        run("webhooks", "add", "--url", "http://127.0.0.1:9/h", "-n", "keep", "-t", "file.created",
            "--rate-limit", "7")
    )  # fmt: skip
    result = run("webhooks", "update", hook, "--rate-limit", "20000", "--nickname", "changed")
    assert result.returncode != 0 and "rate_limit" in result.stderr
    out = run("webhooks", "show", hook).stdout
    assert "7/s" in out and "keep" in out and "changed" not in out


ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_times_are_iso_8601_and_stdout_holds_only_the_result(run):
    """As docs/cli.md says of every list: `2026-11-28T12:54:29.123Z`. The webhook commands
    printed `2026-11-28 12:54:29Z` (no milliseconds, so a time copied into `--since` took in
    the rows of the whole second), and the bulk re-send's progress bar left a blank line on
    stdout."""
    hook = _added(
        run("webhooks", "add", "--url", "http://127.0.0.1:9/h", "-n", "t", "-t", "file.created")
    )
    created = re.search(r"^created\t(.*)$", run("webhooks", "show", hook).stdout, re.M)
    assert created is not None and re.fullmatch(ISO_UTC, created.group(1)), created
    assert run("webhooks", "ping", hook, "--wait", "0").returncode == 0
    header, row = run("webhooks", "deliveries", hook).stdout.splitlines()
    cells = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert re.fullmatch(ISO_UTC, cells["created"]), cells
    bulk = run("webhooks", "redeliver", "--webhook", hook)
    assert bulk.returncode == 0, bulk.stderr
    assert bulk.stdout == "0 failed deliveries queued again\n"


@pytest.mark.parametrize("grace", ["nan", "-1", "inf"])
def test_rotate_secret_refuses_a_grace_that_is_not_a_number_of_seconds(run, grace):
    """`--grace nan` passed both bound checks (NaN compares false) and rotated at once, with
    no grace, while saying nothing."""
    hook = _added(
        run("webhooks", "add", "--url", "http://127.0.0.1:9/h", "-n", "g", "-t", "file.created")
    )
    result = run("webhooks", "rotate-secret", hook, "--grace", grace)
    assert result.returncode == 1, result.stdout
    assert "grace_seconds must be between 0 and 604800" in result.stderr
    assert "signing secret" not in result.stdout


def test_the_authorization_value_can_come_from_standard_input(run):
    # An argument ends up in shell history and `ps`; standard input does not.
    base = ("webhooks", "add", "--url", "http://127.0.0.1:9/h", "-n", "auth", "-t", "file.created")
    hook = _added(run(*base, "--authorization-stdin", input="Bearer s3cret-value\n"))
    shown = run("webhooks", "show", hook).stdout
    assert re.search(r"authorization\s+│?\s*Bearer \*+", shown) and "s3cret" not in shown, shown
    both = run(*base, "--authorization", "x", "--authorization-stdin", input="Bearer y\n")
    assert both.returncode == 2 and "not both" in both.stderr
    empty = run(*base, "--authorization-stdin", input="")
    assert empty.returncode == 1 and "no value on its first line" in empty.stderr
