"""The reliability suite's ledger: every test here reports, per fault or input class, how many
cases it tried and how many failed (lost, duplicated, escaped, crashed, leaked).

A test takes the `ledger` fixture and calls `ledger.record(...)`; at the end of the session the
rows are written to `$SFTPHOOK_RELIABILITY_REPORT` (default `build/reliability.json`), which
`bench/reliability_report.py` turns into the table of docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# `make soak` sets SFTPHOOK_SOAK=1: tests use their longer sizes then.
SOAK = os.environ.get("SFTPHOOK_SOAK", "") == "1"

_ROWS: list[dict[str, object]] = []


class Ledger:
    def __init__(self, test: str) -> None:
        self._test = test

    def record(
        self,
        area: str,
        case: str,
        *,
        tried: int,
        lost: int = 0,
        duplicated: int = 0,
        escaped: int = 0,
        crashed: int = 0,
        leaked: int = 0,
        late: int = 0,
        note: str = "",
    ) -> None:
        """One row of the table: `area` (e.g. "receiver", "server", "sftp fuzzing") and `case`
        (what was done); counts are what was observed, never assumed."""
        _ROWS.append(
            {
                "area": area,
                "case": case,
                "tried": tried,
                "lost": lost,
                "duplicated": duplicated,
                "escaped": escaped,
                "crashed": crashed,
                "leaked": leaked,
                "late": late,
                "note": note,
                "test": self._test,
                "soak": SOAK,
            }
        )


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    yield Ledger(request.node.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _ROWS:
        return
    target = Path(os.environ.get("SFTPHOOK_RELIABILITY_REPORT", "build/reliability.json"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps({"generated_at": int(time.time()), "soak": SOAK, "rows": _ROWS}, indent=2)
    )
