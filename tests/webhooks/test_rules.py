"""The pure rules: retry decisions, Retry-After, filters, header masking, metrics exposition."""

from __future__ import annotations

import random

import pytest

from sftphook.epoch import parse_time
from sftphook.errors import InvalidInput
from sftphook.webhooks import filters
from sftphook.webhooks.metrics import Metrics
from sftphook.webhooks.retry import Outcome, Verdict, decide, parse_retry_after
from sftphook.webhooks.sender import masked_headers
from sftphook.webhooks.service import mask_authorization
from tests.webhooks.conftest import file_event

NOW = 1_700_000_000_000
SCHEDULE = [5.0, 300.0, 1800.0]


def _decide(outcome, attempts=1, jitter=0.0, seed=1, **kw):
    return decide(
        outcome,
        attempts_made=attempts,
        schedule=SCHEDULE,
        jitter=jitter,
        now_ms=NOW,
        rng=random.Random(seed),
        **kw,
    )


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_succeeds(status):
    assert _decide(Outcome(status)).verdict == Verdict.SUCCEEDED


@pytest.mark.parametrize("status", [None, 408, 429, 500, 502, 503, 599])
def test_network_errors_408_429_and_5xx_are_retried_on_schedule(status):
    d = _decide(Outcome(status, error="boom" if status is None else None), attempts=2)
    assert d.verdict == Verdict.RETRY and d.next_attempt_at == NOW + 300_000


@pytest.mark.parametrize("status", [301, 302, 304, 400, 401, 403, 404, 422])
def test_redirects_and_other_4xx_fail_at_once(status):
    d = _decide(Outcome(status))
    assert d.verdict == Verdict.FAILED and not d.pause


def test_410_fails_and_pauses():
    d = _decide(Outcome(410))
    assert d.verdict == Verdict.FAILED and d.pause


def test_schedule_exhausted_fails():
    assert _decide(Outcome(500), attempts=3).verdict == Verdict.RETRY
    assert _decide(Outcome(500), attempts=4).verdict == Verdict.FAILED


def test_pings_and_resends_are_not_retried():
    assert _decide(Outcome(500), retries_allowed=False).verdict == Verdict.FAILED


def test_jitter_stays_within_ten_percent_and_depends_on_rng():
    delays = {(_decide(Outcome(500), jitter=0.1, seed=s).next_attempt_at - NOW) for s in range(50)}
    assert all(4500 <= d <= 5500 for d in delays) and len(delays) > 10


def test_retry_after_replaces_the_scheduled_delay():
    d = _decide(Outcome(429, retry_after="120"), jitter=0.1)
    assert d.next_attempt_at == NOW + 120_000
    d = _decide(Outcome(503, retry_after="Tue, 14 Nov 2023 22:14:20 GMT"))
    assert d.next_attempt_at == NOW + 60_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("0", 0.0),
        ("30", 30.0),
        ("99999999", 86400.0),
        ("Tue, 14 Nov 2023 22:13:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, NOW) == expected


def test_filter_operators_and_combination():
    event = file_event("org", path="inbound/2026/invoice.csv", actor_id="acme")
    cases = [
        ("Path", "is", "inbound/2026/invoice.csv", True),
        ("Path", "is_not", "x", True),
        ("Path", "contains", "/2026/", True),
        ("Path", "not_contains", "tmp", True),
        ("Path", "starts_with", "inbound/", True),
        ("Path", "ends_with", ".csv", True),
        ("Path", "matches", r"^inbound/\d{4}/", True),
        ("Path", "matches", r"\.xml$", False),
        ("ActorId", "is", "acme", True),
        ("ActorType", "is", "User", True),
        ("ActorId", "starts_with", "zeta", False),
    ]
    for field, op, value, expected in cases:
        rules = filters.parse_rules([{"field": field, "operator": op, "value": value}])
        assert filters.matches(rules, event) is expected, (field, op, value)
    both = filters.parse_rules(
        [
            {"field": "Path", "operator": "starts_with", "value": "inbound/"},
            {"field": "ActorId", "operator": "is", "value": "other"},
        ]
    )
    assert not filters.matches(both, event)
    assert filters.matches([], event)


@pytest.mark.parametrize(
    "rule",
    [
        {"field": "Path", "operator": "matches", "value": "(open"},
        {"field": "Size", "operator": "is", "value": "1"},
        {"field": "Path", "operator": "like", "value": "x"},
        {"field": "Path", "operator": "is", "value": 5},
        {"field": "Path", "operator": "is", "value": "x" * 2000},
    ],
)
def test_bad_rules_are_refused_on_save(rule):
    with pytest.raises(InvalidInput):
        filters.parse_rules([rule])


@pytest.mark.timeout(20)
def test_a_pattern_that_backtracks_matches_a_long_path_at_once():
    # `^(a+)+$` backtracks exponentially in Python's `re`: a path of 40 `a` and one `!` took
    # hours. The filter runs inside every event's commit, so it must not.
    rules = filters.parse_rules([{"field": "Path", "operator": "matches", "value": r"^(a+)+$"}])
    for path in ("a" * 40 + "!", "a" * 4000 + "!"):
        assert not filters.matches(rules, file_event("org-1", path=path))
    assert filters.matches(rules, file_event("org-1", path="a" * 4000))


@pytest.mark.parametrize("pattern", [r"(a)\1", r"inbound/(?=2026)", r"(?<!tmp/)x"])
def test_backreferences_and_lookaround_are_refused_on_save(pattern):
    with pytest.raises(InvalidInput, match="backreferences and lookaround are not supported"):
        filters.parse_rules([{"field": "Path", "operator": "matches", "value": pattern}])


def test_an_unsupported_saved_pattern_matches_nothing_and_says_why(caplog):
    # Saved before patterns were checked as they are now: the event's commit goes on.
    rules = filters.stored_rules([{"field": "Path", "operator": "matches", "value": r"(x)\1"}])
    with caplog.at_level("WARNING", logger="sftphook.webhooks.filters"):
        assert not filters.matches(rules, file_event("org-1", path="xx"))
    assert "matches nothing" in caplog.text


def test_rule_text_of_the_cli():
    assert filters.parse_rule_text("Path starts_with in box/") == {
        "field": "Path",
        "operator": "starts_with",
        "value": "in box/",
    }


def test_masked_headers_hide_authorization_and_signatures():
    masked = masked_headers(
        {
            "Authorization": "Bearer abc",
            "X-Hub-Signature": "sha256=abcd",
            "X-Hub-Signature-256": "sha256=abcd",
            "webhook-signature": "v1,AAA v1,BBB",
            "webhook-id": "id",
        }
    )
    assert masked == {
        "Authorization": "***",
        "X-Hub-Signature": "sha256=***",
        "X-Hub-Signature-256": "sha256=***",
        "webhook-signature": "v1,*** v1,***",
        "webhook-id": "id",
    }
    assert mask_authorization("Bearer abc") == "Bearer ***"
    assert mask_authorization("abc") == "***"
    assert mask_authorization(None) is None


def test_parse_time_accepts_epoch_ms_and_iso():
    assert parse_time("1700000000000", field="since") == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20Z", field="since") == 1_700_000_000_000
    with pytest.raises(InvalidInput):
        parse_time("yesterday", field="since")


def test_metrics_exposition_format():
    m = Metrics()
    m.count_events(["file.created", "file.created", "file.deleted"])
    m.observe_attempt("file.created", "succeeded", 0.003)
    m.observe_attempt("file.created", "retry", 12.0)
    m.count_completed("succeeded")
    text = m.render(
        deliveries_by_status={"pending": 2, "retrying": 0, "held": 0},
        queue_depth=2,
        oldest_pending_age_seconds=1.5,
    )
    assert 'sftphook_events_total{topic="file.created"} 2' in text
    assert 'sftphook_webhook_attempt_duration_seconds_bucket{le="0.005"} 1' in text
    assert 'sftphook_webhook_attempt_duration_seconds_bucket{le="10"} 1' in text
    assert 'sftphook_webhook_attempt_duration_seconds_bucket{le="+Inf"} 2' in text
    assert "sftphook_webhook_attempt_duration_seconds_count 2" in text
    assert 'sftphook_webhook_deliveries{status="pending"} 2' in text
    assert 'sftphook_webhook_deliveries_completed_total{status="succeeded"} 1' in text
    assert 'sftphook_webhook_deliveries_completed_total{status="failed"} 0' in text
    assert "# TYPE sftphook_webhook_deliveries_completed_total counter" in text
    assert "sftphook_webhook_oldest_pending_age_seconds 1.5" in text
    assert "# TYPE sftphook_webhook_attempt_duration_seconds histogram" in text
