"""NUL characters in what a request brings: found, and refused before any query sees them.

PostgreSQL can neither store nor compare text that holds one, so left to the database such a
value is a server error; and no name, path or address holds one. The REST API (`api.deps`) and
the dashboard (`web.pages`, `web.auth`) both look with the functions here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sftphook.errors import InvalidInput

NUL = "\x00"


def nul_in(value: Any) -> list[str] | None:
    """Where the first NUL of `value` is, or None: `[]` for a string that holds one, the path
    to the string in a JSON document (`["filter", "0", "value"]`; a key with one counts as its
    object's). Anything else holds none. Walked with a list, not by recursion: JSON nests deeper
    than the stack allows."""
    pending: list[tuple[Any, list[str]]] = [(value, [])]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return where
        elif isinstance(item, dict):
            if any(NUL in key for key in item):
                return where
            pending.extend((inner, [*where, key]) for key, inner in reversed(item.items()))
        elif isinstance(item, list):
            pending.extend(
                (inner, [*where, str(i)]) for i, inner in reversed(list(enumerate(item)))
            )
    return None


def refuse_nul(
    values: Iterable[tuple[str, Any]], *, message: Callable[[str], str], names: bool
) -> None:
    """Raise InvalidInput for the first `(name, value)` with a NUL in its value, or in its name
    too when `names`.

    The error's field is the name, or for a NUL inside a JSON document the path to it
    (`filter.0.value`). `message` words the error for that field: the API names the field
    beside its message, the dashboard shows a person one sentence."""
    for name, value in values:
        if names and NUL in name:
            field = name
        else:
            where = nul_in(value)
            if where is None:
                continue
            field = ".".join(where) or name
        raise InvalidInput(message(field), field=field)
