"""Pure path rules: how a client's path maps into its home inside the organization root."""

from __future__ import annotations

from sftphook.errors import InvalidInput


def split(path: str) -> list[str]:
    """The non-empty components of a path, `.` dropped (`..` kept: it is resolved later)."""
    return [p for p in path.split("/") if p not in ("", ".")]


def normalize_client(path: str, cwd: str = "/") -> list[str]:
    """A client path as components of the client's own tree, whose "/" is the home.

    `..` stops at the client's "/" the way it does at the root of a chroot, so text alone can
    never name anything above the home; links are resolved later, on the real tree.
    """
    if "\x00" in path:
        raise InvalidInput("a path must not contain NUL characters")
    parts: list[str] = [] if path.startswith("/") else split(cwd)
    for part in split(path):
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return parts


def client_to_org(home: str, path: str) -> list[str]:
    """The components, from the organization root, of a client path in a user whose home is
    `home` (e.g. "/partners/acme")."""
    return split(home) + normalize_client(path)


def org_to_client(home: str, parts: list[str]) -> str:
    """The client-visible absolute path of an organization path inside `home`."""
    home_parts = split(home)
    if parts[: len(home_parts)] != home_parts:
        raise ValueError("path is outside the home")
    return "/" + "/".join(parts[len(home_parts) :])


def is_within(home_parts: list[str], parts: list[str]) -> bool:
    return parts[: len(home_parts)] == home_parts


def event_path(parts: list[str], *, directory: bool = False) -> str:
    """An event's path: relative to the organization root, directories end with "/"."""
    text = "/".join(parts)
    return text + "/" if directory and text else text
