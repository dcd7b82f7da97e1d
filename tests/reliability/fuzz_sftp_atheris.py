"""Coverage-guided SFTP fuzzing with atheris (libFuzzer): each input is the byte stream a client
sends on a fresh `sftp` channel after the INIT. The server runs in this process, instrumented,
so the fuzzer steers toward new paths in the SFTP handler and storage.

    python -m tests.reliability.fuzz_sftp_atheris -runs=20000 [corpus_dir]

Exits non-zero when the server stops, another session stops answering, or descriptors or
sessions are left behind. `pip install '.[fuzz]'` installs atheris.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["sftphook", "asyncssh.sftp"]):
    import asyncssh.sftp  # noqa: F401

    import sftphook.sftp.handler  # noqa: F401
    import sftphook.sftp.server  # noqa: F401
    import sftphook.sftp.session  # noqa: F401
    import sftphook.storage.local  # noqa: F401
    from sftphook.config import Settings

import paramiko  # noqa: E402

from tests.reliability.input_server import ThreadedServer, open_fds  # noqa: E402

PASSWORD = "fuzzing password 1"
INIT = b"\x00\x00\x00\x05\x01\x00\x00\x00\x03"


class Target:
    def __init__(self, srv: ThreadedServer) -> None:
        self.srv = srv
        self.transport = paramiko.Transport(("127.0.0.1", srv.app.sftp.port))
        self.transport.connect(username="fuzz", password=PASSWORD)
        witness = paramiko.SFTPClient.from_transport(self.transport)
        assert witness is not None
        self.witness = witness
        self.witness.stat(".")
        self.base = (open_fds(), srv.session_count())
        self.runs = 0

    def one_input(self, data: bytes) -> None:
        self.runs += 1
        chan = self.transport.open_session(timeout=10)
        chan.invoke_subsystem("sftp")
        chan.settimeout(0.02)
        try:
            chan.sendall(INIT + data)
            while chan.recv(65536):
                pass
        except (TimeoutError, OSError, EOFError):
            pass
        finally:
            chan.close()
        if self.runs % 50 == 0:
            self.check()

    def check(self) -> None:
        if not self.srv.alive():
            raise RuntimeError("the server stopped")
        self.witness.stat(".")
        figures = self.srv.settle(*self.base)
        if figures != self.base:
            raise RuntimeError(f"left behind: descriptors/sessions {figures} != {self.base}")


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="sftphook-fuzz-")) / "data"
    settings = Settings.load(
        data_dir=data_dir,
        sftp={"host": "127.0.0.1", "port": 0, "ban_threshold": 1_000_000},
        http={"host": "127.0.0.1", "port": 0},
    )
    with ThreadedServer(settings, frozenset({"sftp"})) as srv:
        org = srv.call(srv.app.accounts.resolve_organization(None))
        srv.call(srv.app.accounts.add_user(org.id, "fuzz", password=PASSWORD))
        target = Target(srv)
        atheris.Setup(sys.argv, target.one_input)
        atheris.Fuzz()  # libFuzzer ends the process; `check()` ran every 50 inputs


if __name__ == "__main__":
    main()
