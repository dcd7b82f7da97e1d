"""Query parameters that several routes take, described once: the time bounds of a listing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from sftphook.epoch import ACCEPTED

Since = Annotated[
    str | None,
    Query(
        description=f"From this time on (inclusive): {ACCEPTED}.",
        examples=["2026-01-31T00:00:00Z"],
    ),
]
Until = Annotated[
    str | None,
    Query(description=f"Before this time (exclusive): {ACCEPTED}.", examples=["1769817600000"]),
]
