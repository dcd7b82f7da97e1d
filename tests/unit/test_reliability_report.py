"""bench/reliability_report.py: the ledger's rows become the table between the markers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "reliability_report.py"
_SPEC = importlib.util.spec_from_file_location("reliability_report", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
report = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(report)


def _row(area: str, case: str, tried: int, **counts: int) -> dict[str, object]:
    return {"area": area, "case": case, "tried": tried, "note": "", **counts}


def test_rows_merge_sort_by_area_and_total(tmp_path: Path) -> None:
    ledger = {
        "generated_at": 0,
        "soak": False,
        "rows": [
            _row("sftp fuzzing", "truncated packets", 50),
            _row("load", "burst", 100, duplicated=1),
            _row("receiver", "down | back", 10, lost=2),
            _row("load", "burst", 100),
        ],
    }
    (tmp_path / "r.json").write_text(json.dumps(ledger))
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{report.START}\nold table\n{report.END}\nafter\n")
    assert report.main(["--report", str(tmp_path / "r.json"), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "old table" not in text and text.startswith("intro") and text.endswith("after\n")
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[1].startswith("| receiver | down \\| back | 10 | 2 |")
    assert lines[2].startswith("| load | burst | 200 | 0 | 1 |")
    assert lines[3].startswith("| sftp fuzzing |")
    assert lines[-1].startswith("| **total** | 3 cases | **260** | **2** | **1** |")


def test_a_document_without_markers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        report.rewrite("no markers here", "table")
