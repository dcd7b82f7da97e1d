"""Per-webhook delivery tuning: retry schedule, timeout, concurrency and rate limit, with bounds.

A webhook stores only what it overrides (in `Webhook.settings`); anything it leaves out follows
the configuration (`webhooks.*`), so changing a default changes every webhook that kept it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from sftphook.config import WebhookSettings
from sftphook.errors import InvalidInput

FIELDS = ("retry_schedule", "timeout", "max_concurrency", "rate_limit")

MIN_TIMEOUT = 0.1
MAX_TIMEOUT = 300.0
MAX_RETRIES = 20
MAX_RETRY_DELAY = 7 * 24 * 3600.0
MAX_CONCURRENCY = 1000
MIN_RATE = 0.1
MAX_RATE = 10000.0


@dataclasses.dataclass(frozen=True, slots=True)
class Tuning:
    """What applies to one webhook: its overrides, the configured defaults for the rest."""

    retry_schedule: tuple[float, ...]
    timeout: float
    max_concurrency: int | None
    rate_limit: float | None
    # The timeout was set on the webhook (not the configured one).
    timeout_overridden: bool = False


def _number(value: Any, name: str) -> float:
    # bool is an int to Python, but `true` is no number of seconds.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a number", field=name)
    return float(value)


def check_timeout(value: Any) -> float:
    seconds = _number(value, "timeout")
    if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
        raise InvalidInput(
            f"timeout must be between {MIN_TIMEOUT:g} and {MAX_TIMEOUT:g} seconds", field="timeout"
        )
    return seconds


def check_retry_schedule(value: Any) -> list[float]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidInput(
            "retry_schedule must be a list of delays in seconds, like [5, 300, 1800]",
            field="retry_schedule",
        )
    if len(value) > MAX_RETRIES:
        raise InvalidInput(
            f"retry_schedule allows at most {MAX_RETRIES} retries", field="retry_schedule"
        )
    delays = [_number(v, "retry_schedule") for v in value]
    if any(not 0 <= d <= MAX_RETRY_DELAY for d in delays):
        raise InvalidInput(
            f"every retry delay must be between 0 and {MAX_RETRY_DELAY:g} seconds (7 days)",
            field="retry_schedule",
        )
    return delays


def check_max_concurrency(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("max_concurrency must be a whole number", field="max_concurrency")
    if not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidInput(
            f"max_concurrency must be between 1 and {MAX_CONCURRENCY}", field="max_concurrency"
        )
    return value


def check_rate_limit(value: Any) -> float:
    rate = _number(value, "rate_limit")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidInput(
            f"rate_limit must be between {MIN_RATE:g} and {MAX_RATE:g} requests per second",
            field="rate_limit",
        )
    return rate


_CHECKS = {
    "retry_schedule": check_retry_schedule,
    "timeout": check_timeout,
    "max_concurrency": check_max_concurrency,
    "rate_limit": check_rate_limit,
}


def merge(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The stored overrides after `changes`: a value sets a field (checked), None returns it to
    the configured default. Raises InvalidInput, naming the field, for a bad value."""
    result = {k: v for k, v in stored.items() if k in FIELDS and v is not None}
    for name, value in changes.items():
        if name not in _CHECKS:
            raise InvalidInput(
                f"unknown setting {name!r}; choose from " + ", ".join(FIELDS), field=name
            )
        if value is None:
            result.pop(name, None)
        else:
            result[name] = _CHECKS[name](value)
    return result


def effective(stored: Mapping[str, Any] | None, defaults: WebhookSettings) -> Tuning:
    values = stored or {}
    schedule = values.get("retry_schedule")
    timeout = values.get("timeout")
    concurrency = values.get("max_concurrency")
    rate = values.get("rate_limit")
    return Tuning(
        retry_schedule=tuple(schedule if schedule is not None else defaults.retry_schedule),
        timeout=float(timeout) if timeout is not None else defaults.timeout,
        max_concurrency=int(concurrency) if concurrency is not None else defaults.max_concurrency,
        rate_limit=float(rate) if rate is not None else defaults.rate_limit,
        timeout_overridden=timeout is not None,
    )


def parse_schedule_text(text: str) -> list[float]:
    """`5, 60, 300` (seconds; `5s`, `5m`, `2h` also read) → a retry schedule; `none` → no
    retries."""
    if text.strip().lower() == "none":
        return []
    delays: list[float] = []
    for part in text.replace(";", ",").split(","):
        item = part.strip().lower()
        if not item:
            continue
        scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(item[-1], 0)
        number = item[:-1] if scale else item
        try:
            delays.append(float(number) * (scale or 1))
        except ValueError as exc:
            raise InvalidInput(
                f"retry schedule entry {part.strip()!r} is not a delay; write seconds separated "
                "by commas, like `5, 60, 300` (or 5s, 5m, 2h)",
                field="retry_schedule",
            ) from exc
    return delays
