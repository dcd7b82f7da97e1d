"""The server's log: one line per record, `time level logger: message`, on stderr or a file."""

from __future__ import annotations

import logging
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str | int, *, filename: Path | str | None = None) -> None:
    """Set up the root logger for `sftphook serve`.

    The format names no source line, thread or process, so records do not look them up: the
    delivery engine logs a line per attempt at INFO, and finding the caller's frame and the
    thread and process names was about a third of what a line cost."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # the documented switch that turns off findCaller
    logging.basicConfig(
        level=level.upper() if isinstance(level, str) else level,
        format=FORMAT,
        filename=str(filename) if filename is not None else None,
    )
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
