"""Organizations, SFTP users and API tokens: the accounts that the CLI and the API manage."""

from sftphook.accounts.service import AccountService

__all__ = ["AccountService"]
