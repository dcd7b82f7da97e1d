"""Reading a Teams Adaptive Card as its reader sees it, and checking that nothing in it is read as
Markdown."""

from __future__ import annotations

from typing import Any

# Adaptive Card elements whose text Teams reads as Markdown.
MARKDOWN_ELEMENTS = {"TextBlock", "FactSet"}


def elements(node: Any) -> list[dict[str, Any]]:
    """Every element of a card, depth first."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "type" in node:
            found.append(node)
        for value in node.values():
            found.extend(elements(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(elements(item))
    return found


def _text(block: dict[str, Any]) -> str:
    assert block["type"] == "RichTextBlock", block
    return "".join(run["text"] for run in block["inlines"] if run["type"] == "TextRun")


def read_card(card: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The card's headline and its facts by title; fails if any of it would be read as
    Markdown."""
    kinds = {e["type"] for e in elements(card["body"])}
    assert not kinds & MARKDOWN_ELEMENTS, kinds
    first, *rows = card["body"]
    facts = {}
    for row in rows:
        title, value = (_text(column["items"][0]) for column in row["columns"])
        facts[title] = value
    return _text(first), facts
