"""What happens after an attempt (DESIGN.md §5): success, retry when, or fail; pure functions."""

from __future__ import annotations

import dataclasses
import email.utils
import enum
import random
from collections.abc import Sequence

# A receiver may ask for a pause, but not for one longer than a day.
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


class Verdict(enum.StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt observed: a response status, or a network error (status None)."""

    status: int | None
    error: str | None = None
    retry_after: str | None = None
    # Final whatever the status says (an SMTP 5xx answer): retrying cannot help.
    permanent: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    # Epoch ms of the next attempt, when verdict is RETRY.
    next_attempt_at: int | None = None
    # The endpoint is gone (410): pause the webhook.
    pause: bool = False
    reason: str = ""


def is_success(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def is_retryable(outcome: Outcome) -> bool:
    """Network errors, timeouts, 408, 429 and 5xx; redirects and other 4xx are final."""
    status = outcome.status
    if status is None:
        return True
    return status in (408, 429) or 500 <= status < 600


def parse_retry_after(value: str | None, now_ms: int) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta seconds or an HTTP date), clamped to
    [0, one day]; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - now_ms / 1000
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def jittered(delay: float, jitter: float, rng: random.Random) -> float:
    if jitter <= 0 or delay <= 0:
        return delay
    return delay * (1 + rng.uniform(-jitter, jitter))


def decide(
    outcome: Outcome,
    *,
    attempts_made: int,
    schedule: Sequence[float],
    jitter: float,
    now_ms: int,
    rng: random.Random,
    retries_allowed: bool = True,
) -> Decision:
    """The decision after attempt number `attempts_made` (1 for the first try).

    `schedule[i]` is the wait before try i+2, so a schedule of n delays allows n+1 tries.
    `Retry-After` replaces the scheduled wait (without jitter) but still uses up a try.
    """
    if is_success(outcome.status):
        return Decision(Verdict.SUCCEEDED, reason=f"HTTP {outcome.status}")
    reason = outcome.error or f"HTTP {outcome.status}"
    if outcome.status == 410:
        return Decision(Verdict.FAILED, pause=True, reason="the endpoint answered 410 Gone")
    if not retries_allowed or outcome.permanent or not is_retryable(outcome):
        return Decision(Verdict.FAILED, reason=reason)
    index = attempts_made - 1
    if index >= len(schedule):
        return Decision(Verdict.FAILED, reason=f"{reason}; no retries left")
    asked = parse_retry_after(outcome.retry_after, now_ms)
    delay = asked if asked is not None else jittered(schedule[index], jitter, rng)
    return Decision(Verdict.RETRY, next_attempt_at=now_ms + round(delay * 1000), reason=reason)
