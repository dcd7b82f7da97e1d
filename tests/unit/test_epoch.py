"""Times as users give them: exact at the edges of 1970..9999, refused outside with the range."""

import pytest

from sftphook.epoch import MAX_EPOCH_MS, check_order, epoch_ms, parse_time
from sftphook.errors import InvalidInput


def test_parse_time_is_exact_at_both_ends_of_the_range():
    assert parse_time("0", field="since") == 0
    assert parse_time("1970-01-01T00:00:00Z", field="since") == 0
    assert parse_time(str(MAX_EPOCH_MS), field="until") == MAX_EPOCH_MS
    assert parse_time("9999-12-31T23:59:59.999Z", field="until") == MAX_EPOCH_MS
    assert parse_time("9999-12-31T23:59:59.999+00:00", field="until") == MAX_EPOCH_MS
    assert parse_time("2023-11-14T23:13:20+01:00", field="since") == 1_700_000_000_000
    assert parse_time(1_700_000_000_000, field="since") == 1_700_000_000_000
    assert parse_time(None, field="since") is None
    assert parse_time("", field="since") is None


@pytest.mark.parametrize(
    "value",
    [
        -1,
        MAX_EPOCH_MS + 1,
        10**400,
        "-1",
        str(MAX_EPOCH_MS + 1),
        "9" * 5000,
        "²",
        "1.5",
        "1969-12-31T23:59:59.999Z",
        "9999-12-31T23:59:59-00:01",
        "0001-01-01T00:00:00+14:00",
        "x" * 10_000,
    ],
)
def test_parse_time_refuses_times_outside_the_range_naming_field_and_range(value):
    with pytest.raises(InvalidInput) as caught:
        parse_time(value, field="until")
    assert caught.value.field == "until"
    assert f"until must be epoch milliseconds from 0 to {MAX_EPOCH_MS}" in caught.value.message
    assert "9999-12-31T23:59:59.999Z" in caught.value.message


def test_epoch_ms_takes_only_plain_digits_in_range():
    assert epoch_ms("1700000000000") == 1_700_000_000_000
    for text in ["", "-5", "+5", "²", " 5", str(MAX_EPOCH_MS + 1), "9" * 5000]:
        assert epoch_ms(text) is None, text


def test_check_order_refuses_an_empty_interval():
    check_order(1, 2)
    check_order(None, 2)
    with pytest.raises(InvalidInput):
        check_order(2, 2)
