"""Webhook filters (DESIGN.md §5): rules on an event's path and actor, AND-combined; pure."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import re2

from sftphook.errors import InvalidInput
from sftphook.events.model import EventRecord

FIELDS = ("Path", "ActorId", "ActorType")
OPERATORS = ("is", "is_not", "contains", "not_contains", "starts_with", "ends_with", "matches")
MAX_RULES = 20
MAX_VALUE_LENGTH = 1024

log = logging.getLogger(__name__)

# `matches` runs a user's pattern against paths that SFTP clients choose, inside the commit of
# every event. Python's `re` backtracks: `^(a+)+$` takes hours on a 40-character name and would
# stall every organization's events. RE2 matches in time linear in the path, with bounded memory
# (a pattern whose program needs more is refused when saved). Its syntax is Python's without
# backreferences and lookaround.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 2 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    field: str
    operator: str
    value: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "operator": self.operator, "value": self.value}


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, options=_RE2_OPTIONS)


def _refusal(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    if "perl operator" in text or "escape sequence" in text:
        text += " (backreferences and lookaround are not supported)"
    return text


@functools.lru_cache(maxsize=256)
def _stored(pattern: str) -> Any:
    """A saved pattern, or None: one saved before patterns were checked with RE2 (a
    backreference, a lookaround) matches nothing rather than failing every event's commit."""
    try:
        return _compiled(pattern)
    except re2.error as exc:
        log.warning(
            "filter pattern %r matches nothing: %s; edit the webhook's filter",
            pattern,
            _refusal(exc),
        )
        return None


def parse_rules(raw: Iterable[Mapping[str, Any]] | None) -> list[Rule]:
    """Validate rules given by a user; a regex that does not compile is refused here, on save."""
    rules: list[Rule] = []
    for index, item in enumerate(raw or ()):
        where = f"filter.{index}"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{where} must be an object with field, operator and value")
        field, operator, value = item.get("field"), item.get("operator"), item.get("value")
        if field not in FIELDS:
            raise InvalidInput(
                f"{where}.field must be one of {', '.join(FIELDS)}", field=f"{where}.field"
            )
        if operator not in OPERATORS:
            raise InvalidInput(
                f"{where}.operator must be one of {', '.join(OPERATORS)}",
                field=f"{where}.operator",
            )
        if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH:
            raise InvalidInput(
                f"{where}.value must be a string of at most {MAX_VALUE_LENGTH} characters",
                field=f"{where}.value",
            )
        if operator == "matches":
            try:
                _compiled(value)
            except re2.error as exc:
                raise InvalidInput(
                    f"{where}.value is not a valid regular expression: {_refusal(exc)}",
                    field=f"{where}.value",
                ) from exc
        rules.append(Rule(field, operator, value))
    if len(rules) > MAX_RULES:
        raise InvalidInput(f"a filter has at most {MAX_RULES} rules", field="filter")
    return rules


def parse_rule_text(text: str) -> dict[str, str]:
    """`Path starts_with inbound/` (the CLI's form) as a rule object; validated by parse_rules."""
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise InvalidInput(
            f"filter {text!r} must read FIELD OPERATOR VALUE, e.g. 'Path starts_with inbound/'",
            field="filter",
        )
    return {"field": parts[0], "operator": parts[1], "value": parts[2] if len(parts) > 2 else ""}


def field_value(event: EventRecord, field: str) -> str:
    if field == "Path":
        return event.path
    if field == "ActorId":
        return event.actor_id
    return event.actor_type


def rule_matches(rule: Rule, value: str) -> bool:
    op, expected = rule.operator, rule.value
    if op == "is":
        return value == expected
    if op == "is_not":
        return value != expected
    if op == "contains":
        return expected in value
    if op == "not_contains":
        return expected not in value
    if op == "starts_with":
        return value.startswith(expected)
    if op == "ends_with":
        return value.endswith(expected)
    pattern = _stored(expected)
    return pattern is not None and pattern.search(value) is not None


def matches(rules: Sequence[Rule], event: EventRecord) -> bool:
    """True when every rule holds (no rules: every event). Paths are compared as recorded:
    relative to the organization root, no leading "/", not encoded."""
    return all(rule_matches(rule, field_value(event, rule.field)) for rule in rules)


def stored_rules(raw: Iterable[Mapping[str, Any]] | None) -> list[Rule]:
    """Rules from the database, already validated when saved."""
    return [Rule(str(r["field"]), str(r["operator"]), str(r["value"])) for r in raw or ()]
