"""The domain errors of sftphook; each maps to one SFTP status code and one HTTP problem.

    SftphookError
    ├── InvalidInput          400/422  SFTP: FX_BAD_MESSAGE   bad values from a user
    ├── NotFound              404      SFTP: FX_NO_SUCH_FILE  unknown id, or another organization's
    ├── AlreadyExists         409      SFTP: FX_FILE_ALREADY_EXISTS
    ├── PermissionDenied      403      SFTP: FX_PERMISSION_DENIED
    │   └── OutsideHome       403      a path, `..` or a link that would leave the home directory
    ├── Unauthorized          401      bad, revoked or missing credentials
    ├── UnsafeDestination     422      a webhook URL that points where we must not send
    ├── Unsupported           501      SFTP: FX_OP_UNSUPPORTED  (links in an object store)
    ├── StorageUnavailable    503      SFTP: FX_FAILURE (the object store does not answer)
    ├── StorageFull           507      SFTP: FX_FAILURE (no space left)
    ├── FileTooLarge          413      SFTP: FX_FAILURE (a write or resize past sftp.max_file_size)
    └── InvalidConfiguration  500      settings that cannot work, found when the server starts

The message of an error is shown to the user: it says what to do and never carries a secret.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import asyncssh


class SftphookError(Exception):
    http_status: ClassVar[int] = 500
    sftp_code: ClassVar[int] = asyncssh.FX_FAILURE
    problem_type: ClassVar[str] = "about:blank"
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": self.problem_type,
            "title": self.title,
            "status": self.http_status,
            "detail": self.message,
        }
        if instance:
            problem["instance"] = instance
        problem.update(self.extra)
        return problem


class InvalidInput(SftphookError):
    http_status = 422
    sftp_code = asyncssh.FX_BAD_MESSAGE
    problem_type = "https://sftphook.dev/problems/invalid-input"
    title = "Invalid input"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        if field is not None:
            extra["errors"] = [{"field": field, "message": message}]
        super().__init__(message, **extra)
        self.field = field


class NotFound(SftphookError):
    http_status = 404
    sftp_code = asyncssh.FX_NO_SUCH_FILE
    problem_type = "https://sftphook.dev/problems/not-found"
    title = "Not found"


class AlreadyExists(SftphookError):
    http_status = 409
    sftp_code = asyncssh.FX_FILE_ALREADY_EXISTS
    problem_type = "https://sftphook.dev/problems/already-exists"
    title = "Already exists"


class PermissionDenied(SftphookError):
    http_status = 403
    sftp_code = asyncssh.FX_PERMISSION_DENIED
    problem_type = "https://sftphook.dev/problems/permission-denied"
    title = "Permission denied"


class OutsideHome(PermissionDenied):
    problem_type = "https://sftphook.dev/problems/outside-home"
    title = "Outside the home directory"


class Unauthorized(SftphookError):
    http_status = 401
    sftp_code = asyncssh.FX_PERMISSION_DENIED
    problem_type = "https://sftphook.dev/problems/unauthorized"
    title = "Unauthorized"


class UnsafeDestination(InvalidInput):
    problem_type = "https://sftphook.dev/problems/unsafe-destination"
    title = "Unsafe webhook destination"


class Unsupported(SftphookError):
    http_status = 501
    sftp_code = asyncssh.FX_OP_UNSUPPORTED
    problem_type = "https://sftphook.dev/problems/unsupported"
    title = "Not supported"


class StorageUnavailable(SftphookError):
    http_status = 503
    sftp_code = asyncssh.FX_FAILURE
    problem_type = "https://sftphook.dev/problems/storage-unavailable"
    title = "Storage unavailable"


class StorageFull(SftphookError):
    http_status = 507
    sftp_code = asyncssh.FX_FAILURE
    problem_type = "https://sftphook.dev/problems/storage-full"
    title = "No space left"


class FileTooLarge(SftphookError):
    """A write or a resize that would make a file larger than the configured limit."""

    http_status = 413
    sftp_code = asyncssh.FX_FAILURE
    problem_type = "https://sftphook.dev/problems/file-too-large"
    title = "File too large"


class InvalidConfiguration(SftphookError):
    """Settings that cannot work, found only when the server starts: what a setting is held to
    there, such as the host keys in the database for `sftp.signature_algorithms`. The message
    names the setting; `sftphook serve` prints it as its one error line."""

    problem_type = "https://sftphook.dev/problems/invalid-configuration"
    title = "Invalid configuration"


class UnknownSchema(SftphookError):
    """The database's schema is at a revision this version does not know (a newer version
    upgraded it): nothing can safely run on it. Every command prints the message as its one
    error line."""

    problem_type = "https://sftphook.dev/problems/unknown-schema"
    title = "Unknown database schema"


def unknown_schema(revision: str | None) -> UnknownSchema:
    from sftphook import __version__

    return UnknownSchema(
        f"the database's schema is at revision {revision}, which sftphook {__version__} does "
        "not know: a newer version upgraded it; run that version, or restore a backup taken "
        "before that upgrade"
    )


class CannotListen(SftphookError):
    """A role could not listen where its settings say (the port is taken, the address is not
    this machine's, a port below 1024 without the right): `sftphook serve` prints the message,
    which names the address and the setting to change, as its one error line."""

    problem_type = "https://sftphook.dev/problems/cannot-listen"
    title = "Cannot listen"


def cannot_listen(
    what: str, host: str, port: int, group: str, exc: OSError, *, switch: str | None = None
) -> CannotListen:
    """The error of `what` ("SFTP") failing to listen on `host`:`port` with `exc`; `group` is
    the settings' group of that address ("sftp"); `switch`, a setting of that group whose
    `false` turns `what` off."""
    # The system's words for the errno: asyncio's own message repeats the address.
    reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
    env = f"SFTPHOOK_{group.upper()}__"
    off = (
        f"; {env}{switch.upper()}=false, or {group}.{switch} = false, turns them off"
        if switch
        else ""
    )
    return CannotListen(
        f"{what} cannot listen on {host}:{port}: {reason} (the address and port are set by "
        f"{env}HOST and {env}PORT, or {group}.host and {group}.port{off})"
    )
