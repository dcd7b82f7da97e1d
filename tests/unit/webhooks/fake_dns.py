"""A hosts-file-like stand-in for name lookup, for the URL safety tests."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence

from sftphook.webhooks.urlsafety import IPAddress


class HostsLookup:
    """Answers names from a table; a name with several answer lists gives the next list on each
    lookup (the last one repeats), the way a rebinding DNS server changes its answer."""

    def __init__(self, table: Mapping[str, Sequence[str] | Sequence[Sequence[str]]]) -> None:
        self._answers: dict[str, list[list[IPAddress]]] = {}
        for name, answers in table.items():
            rounds = [answers] if all(isinstance(a, str) for a in answers) else answers
            self._answers[name] = [[ipaddress.ip_address(a) for a in round_] for round_ in rounds]
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        rounds = self._answers.get(host.rstrip(".").lower())
        if rounds is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return rounds.pop(0) if len(rounds) > 1 else list(rounds[0])
