"""Points in time as users give them: Unix epoch milliseconds or ISO 8601, 1970 to 9999."""

from __future__ import annotations

import datetime

from sftphook.errors import InvalidInput

MIN_EPOCH_MS = 0
# 9999-12-31T23:59:59.999Z: what ISO 8601 can say, and far inside a 64-bit database integer.
MAX_EPOCH_MS = 253_402_300_799_999
ACCEPTED = (
    f"epoch milliseconds from {MIN_EPOCH_MS} to {MAX_EPOCH_MS}, or an ISO 8601 time from "
    "1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z such as 2026-01-31T12:00:00Z"
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ONE_MS = datetime.timedelta(milliseconds=1)
# Longer than any time in range: refused before int() or fromisoformat() see it (int() raises
# on more than 4,300 digits, which used to be a 500).
_MAX_LENGTH = 64


def epoch_ms(text: str) -> int | None:
    """`text` as epoch milliseconds when it is ASCII digits (an optional `-`) of a number in
    range, else None; cursors use it, and so does `parse_time` for numbers."""
    digits = text[1:] if text.startswith("-") else text
    # isdigit() alone takes "²" and other digits int() refuses.
    if not digits or len(digits) > len(str(MAX_EPOCH_MS)) or not digits.isascii():
        return None
    if not digits.isdigit():
        return None
    value = int(text)
    return value if MIN_EPOCH_MS <= value <= MAX_EPOCH_MS else None


def parse_time(value: str | int | None, *, field: str) -> int | None:
    """A point in time from the API, the CLI or the dashboard, as epoch milliseconds: a number of
    them, or ISO 8601 (UTC unless it says otherwise). Anything else, or a time outside 1970 to
    9999, is `InvalidInput` naming `field` and the accepted range."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        if not MIN_EPOCH_MS <= value <= MAX_EPOCH_MS:
            raise _out_of_range(field)
        return value
    text = value.strip()
    if len(text) > _MAX_LENGTH:
        raise _out_of_range(field)
    if text.lstrip("-").isdigit():
        number = epoch_ms(text)
        if number is None:
            raise _out_of_range(field)
        return number
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _out_of_range(field) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    # Exact integer arithmetic: a float timestamp loses the last millisecond near the year 9999.
    ms = (when - _EPOCH) // _ONE_MS
    if not MIN_EPOCH_MS <= ms <= MAX_EPOCH_MS:
        raise _out_of_range(field)
    return ms


def check_order(since: int | None, until: int | None, *, field: str = "since") -> None:
    """`since` ≤ time < `until` selects nothing unless `since` is earlier."""
    if since is not None and until is not None and since >= until:
        raise InvalidInput("since must be earlier than until", field=field)


def _out_of_range(field: str) -> InvalidInput:
    return InvalidInput(f"{field} must be {ACCEPTED}", field=field)
