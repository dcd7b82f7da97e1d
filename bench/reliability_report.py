"""Turn the reliability suite's ledger (build/reliability.json) into the table of
docs/reliability.md: one row per area and case, the cases tried and each failure count, a total.

    python bench/reliability_report.py [--report build/reliability.json]
                                       [--doc docs/reliability.md] [--stdout]

The table replaces what lies between the `<!-- reliability-table:start -->` and
`<!-- reliability-table:end -->` markers of the document; `--stdout` prints it instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

START = "<!-- reliability-table:start -->"
END = "<!-- reliability-table:end -->"
COUNTS = ("lost", "duplicated", "late", "escaped", "crashed", "leaked")
# Faults first, in the order docs/reliability.md explains them; input classes after.
AREA_ORDER = ("receiver", "server", "disk", "database", "load")


def merge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the same area and case (a test run twice, parametrized cases) add up."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (str(row["area"]), str(row["case"]))
        into = merged.get(key)
        if into is None:
            merged[key] = {**row, "notes": [row["note"]] if row.get("note") else []}
            continue
        into["tried"] += int(row["tried"])
        for name in COUNTS:
            into[name] = int(into.get(name, 0)) + int(row.get(name, 0))
        if row.get("note"):
            into["notes"].append(row["note"])

    def order(item: dict[str, Any]) -> tuple[int, str]:
        area = str(item["area"])
        rank = AREA_ORDER.index(area) if area in AREA_ORDER else len(AREA_ORDER)
        return rank, area

    return sorted(merged.values(), key=order)  # stable: run order within an area


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(report: dict[str, Any]) -> str:
    rows = merge(list(report.get("rows", [])))
    when = dt.datetime.fromtimestamp(int(report.get("generated_at", 0)), tz=dt.UTC)
    mode = "soak sizes (`make soak`)" if report.get("soak") else "default sizes (`make test`)"
    lines = [
        f"Run of {when:%Y-%m-%d %H:%M} UTC, {mode}.",
        "",
        "| Area | Case | Tried | " + " | ".join(n.capitalize() for n in COUNTS) + " | Observed |",
        "|---|---|--:|" + "--:|" * len(COUNTS) + "---|",
    ]
    totals = dict.fromkeys(("tried", *COUNTS), 0)
    for row in rows:
        for name in totals:
            totals[name] += int(row.get(name, 0))
        counts = " | ".join(str(int(row.get(name, 0))) for name in COUNTS)
        lines.append(
            f"| {_cell(str(row['area']))} | {_cell(str(row['case']))} | {int(row['tried'])} | "
            f"{counts} | {_cell('; '.join(row['notes']))} |"
        )
    total_counts = " | ".join(f"**{totals[name]}**" for name in COUNTS)
    lines.append(f"| **total** | {len(rows)} cases | **{totals['tried']}** | {total_counts} | |")
    return "\n".join(lines)


def rewrite(doc: str, generated: str) -> str:
    start, end = doc.find(START), doc.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the document has no {START} … {END} section")
    return doc[: start + len(START)] + "\n" + generated + "\n" + doc[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=Path("build/reliability.json"))
    parser.add_argument("--doc", type=Path, default=Path("docs/reliability.md"))
    parser.add_argument("--stdout", action="store_true", help="print the table, change nothing")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        message = f"{args.report} does not exist: run the suite first (make reliability)"
        print(message, file=sys.stderr)
        return 1
    generated = table(json.loads(args.report.read_text()))
    if args.stdout:
        print(generated)
        return 0
    try:
        args.doc.write_text(rewrite(args.doc.read_text(), generated))
    except (OSError, ValueError) as exc:
        print(f"cannot update {args.doc}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.doc}: table updated from {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
