"""The command line: `sftphook serve`, and the commands that manage accounts and webhooks.

Thin by design: every command calls the same services as the REST API.
"""

from __future__ import annotations

from sftphook.cli.main import app, main

__all__ = ["app", "main"]
