"""The one NUL check of the REST API and the dashboard: where a NUL is, and how it is refused."""

from __future__ import annotations

import pytest

from sftphook.errors import InvalidInput
from sftphook.nul import nul_in, refuse_nul


def _said(field: str) -> str:
    return f"said of {field}"


def test_nul_in_finds_the_path_to_the_first_nul_of_a_json_document() -> None:
    assert nul_in("plain") is None
    assert nul_in("a\x00b") == []
    assert nul_in({"filter": [{"field": "path", "value": "a\x00"}]}) == ["filter", "0", "value"]
    assert nul_in({"ok": "x", "bad\x00key": 1}) == []  # a key: its object's path
    assert nul_in({"headers": {"x\x00": "y"}}) == ["headers"]
    assert nul_in([1, None, 2.5, True]) is None
    assert nul_in(object()) is None  # an uploaded file, a number: nothing to look into


def test_nul_in_walks_deeper_than_the_stack_goes() -> None:
    deep: object = "\x00"
    for _ in range(5_000):
        deep = [deep]
    assert nul_in(deep) == ["0"] * 5_000


def test_refuse_nul_names_the_field_in_the_callers_words() -> None:
    refuse_nul([("a", "x"), ("b", 3)], message=_said, names=True)
    with pytest.raises(InvalidInput) as refused:
        refuse_nul(
            [("a", "x"), ("notice_email", "a\x00@x"), ("c", "\x00")], message=_said, names=False
        )
    assert refused.value.field == "notice_email"
    assert refused.value.message == "said of notice_email"
    with pytest.raises(InvalidInput) as refused:
        refuse_nul([("body", {"filter": ["a\x00"]})], message=_said, names=False)
    assert refused.value.field == "filter.0"
    with pytest.raises(InvalidInput) as refused:
        refuse_nul([("body", "\x00")], message=_said, names=False)
    assert refused.value.field == "body"


def test_refuse_nul_looks_at_names_only_when_asked() -> None:
    refuse_nul([("pa\x00th", "x")], message=_said, names=False)
    with pytest.raises(InvalidInput) as refused:
        refuse_nul([("pa\x00th", "x")], message=_said, names=True)
    assert refused.value.field == "pa\x00th"
