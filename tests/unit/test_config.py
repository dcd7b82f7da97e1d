"""Settings: a misspelt setting or a value that cannot work stops the command with a message that
names it (docs/configuration.md), inside a group as at the top level."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sftphook.config import Settings


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sftphook.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("dta_dir = 'x'\n", "dta_dir"),
        ("[sftp]\nprot = 2022\n", "sftp.prot"),
        ("[http]\npublic_ulr = 'https://files.example.com'\n", "http.public_ulr"),
        ("[webhooks]\nretry_schedul = [5]\n", "webhooks.retry_schedul"),
        ("[storage]\nbuckt = 'files'\n", "storage.buckt"),
        ("[smtp]\nhots = 'mail.example.com'\n", "smtp.hots"),
        ("[retention]\nevent_days = 7\n", "retention.event_days"),
    ],
)
def test_a_misspelt_setting_in_a_file_is_refused_by_name(
    tmp_path: Path, text: str, name: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.load(_toml(tmp_path, text))
    assert name in str(caught.value)


def test_a_misspelt_setting_in_the_environment_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SFTPHOOK_SFTP__PROT", "2022")
    with pytest.raises(ValidationError) as caught:
        Settings.load()
    assert "sftp.prot" in str(caught.value)


def test_every_documented_spelling_is_accepted(tmp_path: Path) -> None:
    settings = Settings.load(
        _toml(tmp_path, "[smtp]\nfrom = 'ops <ops@example.com>'\n[sftp]\nport = 2022\n")
    )
    assert settings.smtp.from_ == "ops <ops@example.com>" and settings.sftp.port == 2022


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "ERROR", "critical"])
def test_log_levels_are_accepted_in_any_case(level: str) -> None:
    assert Settings.load(log_level=level).log_level == level.upper()


def test_an_unknown_log_level_is_refused_by_name() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.load(log_level="verbose")
    assert "log_level" in str(caught.value) and "DEBUG, INFO, WARNING, ERROR" in str(caught.value)


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_data_dir_is_refused_not_read_as_here(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # `SFTPHOOK_DATA_DIR=$UNSET_VARIABLE sftphook serve` would keep the database and the key in
    # whatever directory the command ran in.
    monkeypatch.setenv("SFTPHOOK_DATA_DIR", value)
    with pytest.raises(ValidationError) as caught:
        Settings.load()
    assert "data_dir is empty" in str(caught.value)
    monkeypatch.delenv("SFTPHOOK_DATA_DIR")
    assert Settings.load().data_dir == Path("sftphook-data")


@pytest.mark.parametrize(
    ("group", "values", "name"),
    [
        ("sftp", {"login_timeout": 0}, "login_timeout"),
        ("sftp", {"login_timeout": -1}, "login_timeout"),
        ("sftp", {"keepalive_interval": -5}, "keepalive_interval"),
        ("webhooks", {"max_response_body": -1}, "max_response_body"),
        ("sftp", {"ipv6_prefix": 0}, "ipv6_prefix"),
        ("sftp", {"ipv6_prefix": 129}, "ipv6_prefix"),
    ],
)
def test_values_that_cannot_work_are_refused_by_name(
    group: str, values: dict[str, float], name: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.load(**{group: values})
    assert f"{group}.{name}" in str(caught.value)


def test_the_lowest_sensible_values_are_accepted() -> None:
    settings = Settings.load(
        sftp={"login_timeout": 0.5, "keepalive_interval": 0}, webhooks={"max_response_body": 0}
    )
    assert settings.sftp.keepalive_interval == 0 and settings.webhooks.max_response_body == 0


@pytest.mark.parametrize("value", [0, 129, -64])
def test_an_ipv6_prefix_out_of_range_is_refused_with_the_range(value: int) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.load(sftp={"ipv6_prefix": value})
    assert f"ipv6_prefix: {value} is not a prefix length from 1 to 128" in str(caught.value)


@pytest.mark.parametrize("value", [1, 48, 64, 128])
def test_ipv6_prefixes_from_1_to_128_are_accepted(value: int) -> None:
    assert Settings.load(sftp={"ipv6_prefix": value}).sftp.ipv6_prefix == value
    assert Settings.load().sftp.ipv6_prefix == 64
