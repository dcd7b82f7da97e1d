"""The dashboard: server-rendered pages over the same services as the REST API."""

from sftphook.web.routes import mount

__all__ = ["mount"]
