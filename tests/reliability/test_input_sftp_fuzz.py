"""SFTP protocol fuzzing: a raw client sends hypothesis-made requests — well-formed ones in any
order, with handles of its own, of another session or made up, and malformed, truncated,
mis-sized and unknown packets — and the server must answer each with an SFTP status or close
that one session, keep serving everyone else, and give back every descriptor it took."""

from __future__ import annotations

import struct
from pathlib import Path

import paramiko
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from sftphook.config import Settings
from tests.reliability.conftest import SOAK, Ledger
from tests.reliability.input_server import ThreadedServer, open_fds
from tests.sftp.conftest import PASSWORD, host_keys_cache, reuse_host_keys  # noqa: F401

EXAMPLES = 3000 if SOAK else 200
MARKER = b"witness-only-7f3a9c"

INIT, VERSION = 1, 2
OPEN, CLOSE, READ, WRITE, LSTAT, FSTAT, SETSTAT, FSETSTAT = 3, 4, 5, 6, 7, 8, 9, 10
OPENDIR, READDIR, REMOVE, MKDIR, RMDIR, REALPATH, STAT, RENAME = 11, 12, 13, 14, 15, 16, 17, 18
READLINK, SYMLINK, EXTENDED = 19, 20, 200
STATUS, HANDLE, DATA, NAME, ATTRS, EXTENDED_REPLY = 101, 102, 103, 104, 105, 201
REPLIES = {STATUS, HANDLE, DATA, NAME, ATTRS, EXTENDED_REPLY}
MAX_PACKET = 4 * 1024 * 1024 + 1024  # asyncssh's limit: longer is refused, the session closed


def u32(n: int) -> bytes:
    return struct.pack(">I", n & 0xFFFFFFFF)


def u64(n: int) -> bytes:
    return struct.pack(">Q", n & 0xFFFFFFFFFFFFFFFF)


def string(b: bytes) -> bytes:
    return u32(len(b)) + b


def frame(body: bytes) -> bytes:
    return u32(len(body)) + body


class Closed(Exception):
    """The server closed this session."""


class RawSession:
    """One `sftp` subsystem channel spoken to byte by byte."""

    def __init__(self, transport: paramiko.Transport) -> None:
        self.chan = transport.open_session(timeout=10)
        self.chan.invoke_subsystem("sftp")
        self.chan.settimeout(10)

    def send(self, raw: bytes) -> None:
        try:
            self.chan.sendall(raw)
        except (OSError, EOFError) as exc:
            raise Closed() from exc

    def _exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            try:
                chunk = self.chan.recv(n - len(out))
            except TimeoutError:
                raise
            except (OSError, EOFError) as exc:
                raise Closed() from exc
            if not chunk:
                raise Closed()
            out += chunk
        return out

    def receive(self) -> bytes:
        (length,) = struct.unpack(">I", self._exactly(4))
        assert 1 <= length <= MAX_PACKET, f"reply of length {length}"
        return self._exactly(length)

    def wait_closed(self, limit: float) -> bool:
        self.chan.settimeout(limit)
        try:
            while True:
                self.receive()
        except Closed:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.chan.close()


# Strategies: the fields of a request.

NAMES = [
    b"a", b"f.txt", b"dir", b"dir/f.txt", b".", b"..", b"/", b"../..", b"/../../etc/passwd",
    b"witness.txt", b"x.filepart", b"", b"\x00", b"a\x00b", b"\xff\xfe", b"//", b"d/../../x",
]  # fmt: skip
paths = st.one_of(st.sampled_from(NAMES), st.binary(max_size=40))
offsets = st.one_of(
    st.integers(0, 4096),
    st.sampled_from([2**31, 2**32 - 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1]),
)
# A write far past the end makes a sparse file whose hash, taken at close, reads every hole:
# writes stay near the start or past what the OS takes.
write_offsets = st.one_of(st.integers(0, 4096), st.sampled_from([2**63 - 1, 2**63, 2**64 - 1]))
lengths = st.one_of(st.integers(0, 70_000), st.sampled_from([2**31, 2**32 - 1]))
pflags = st.one_of(
    st.sampled_from([1, 2, 0x1A, 0x0A, 0x2A, 0x3, 0x4, 0x2E]), st.integers(0, 2**32 - 1)
)


@st.composite
def attrs(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=24))
    flags = draw(st.sampled_from([0, 1, 4, 8, 5, 0x0F, 0x8000000F, 2]))
    out = u32(flags)
    if flags & 1:
        out += u64(draw(st.sampled_from([0, 1, 5, 2**63, 2**64 - 1])))
    if flags & 2:
        out += u32(draw(st.integers(0, 2**32 - 1))) + u32(draw(st.integers(0, 2**32 - 1)))
    if flags & 4:
        out += u32(draw(st.sampled_from([0o777, 0o4755, 0o7777, 0, 2**32 - 1])))
    if flags & 8:
        out += u32(draw(st.integers(0, 2**32 - 1))) + u32(draw(st.integers(0, 2**32 - 1)))
    if flags & 0x80000000:
        count = draw(st.sampled_from([0, 1, 2**32 - 1]))
        out += u32(count) + (string(b"x") + string(b"y") if count == 1 else b"")
    return out


EXTENSION_NAMES = [
    b"posix-rename@openssh.com", b"statvfs@openssh.com", b"fstatvfs@openssh.com",
    b"hardlink@openssh.com", b"fsync@openssh.com", b"lsetstat@openssh.com",
    b"limits@openssh.com", b"copy-data", b"expand-path@openssh.com", b"no-such@example",
]  # fmt: skip


def request_body(draw: st.DrawFn, kind: int, handle: st.SearchStrategy[bytes]) -> bytes:
    """The fields after the request id, for a request of type `kind`."""
    if kind == OPEN:
        return string(draw(paths)) + u32(draw(pflags)) + draw(attrs())
    if kind in (CLOSE, FSTAT, READDIR):
        return string(draw(handle))
    if kind == READ:
        return string(draw(handle)) + u64(draw(offsets)) + u32(draw(lengths))
    if kind == WRITE:
        data = draw(st.binary(max_size=64))
        return string(draw(handle)) + u64(draw(write_offsets)) + string(data)
    if kind == FSETSTAT:
        return string(draw(handle)) + draw(attrs())
    if kind in (SETSTAT, MKDIR):
        return string(draw(paths)) + draw(attrs())
    if kind in (RENAME, SYMLINK):
        return string(draw(paths)) + string(draw(paths))
    if kind == EXTENDED:
        name = draw(st.sampled_from(EXTENSION_NAMES))
        return string(name) + draw(
            st.one_of(
                st.binary(max_size=32),
                st.builds(lambda a, b: string(a) + string(b), paths, paths),
                st.builds(string, handle),
            )
        )
    return string(draw(paths))  # LSTAT, STAT, OPENDIR, REMOVE, RMDIR, REALPATH, READLINK


def handles(own: list[bytes]) -> st.SearchStrategy[bytes]:
    """A handle this session was given, another session's, or a made-up one."""
    return st.one_of(
        st.sampled_from(own or [b"0"]),
        st.sampled_from([b"\x00\x00\x00\x00", b"", b"\xff" * 64]),
        st.binary(max_size=8),
        st.just(FOREIGN[0] if FOREIGN else b""),
    )


FOREIGN: list[bytes] = []

KINDS = [OPEN, CLOSE, READ, WRITE, LSTAT, FSTAT, SETSTAT, FSETSTAT, OPENDIR, READDIR, REMOVE,
         MKDIR, RMDIR, REALPATH, STAT, RENAME, READLINK, SYMLINK, EXTENDED]  # fmt: skip
UNKNOWN_KINDS = st.sampled_from([0, 1, 2, 21, 99, 101, 102, 199, 201, 254, 255])


UNCAUGHT: list[str] = []


def check_reply(
    packet: bytes, request_id: int, stats: dict[str, int], request: bytes = b""
) -> None:
    kind = packet[0]
    assert kind in REPLIES, f"reply of unexpected type {kind}"
    assert struct.unpack(">I", packet[1:5])[0] == request_id, "reply to another request"
    if kind == STATUS:
        code = struct.unpack(">I", packet[5:9])[0]
        stats["status_ok" if code == 0 else "status_error"] += 1
        if packet[13:].startswith(b"Uncaught exception"):
            stats["uncaught"] += 1
            UNCAUGHT.append(f"{request[:120]!r} -> {packet[9:200]!r}")
    else:
        stats["answered"] += 1
    if MARKER in packet:
        stats["escaped"] += 1


@pytest.fixture
def fuzz_settings(settings: Settings, host_keys_cache: Path) -> Settings:  # noqa: F811
    reuse_host_keys(settings, host_keys_cache)
    return settings


@pytest.mark.timeout(3600 if SOAK else 300)
def test_sftp_requests_of_any_shape_get_a_status_or_end_only_their_session(
    fuzz_settings: Settings, ledger: Ledger
) -> None:
    with ThreadedServer(fuzz_settings, frozenset({"sftp"})) as srv:
        org = srv.call(srv.app.accounts.resolve_organization(None))
        # The fuzzing user and, in a home of its own, the user of the session that must
        # keep working (its open file is one the fuzzing user cannot reach).
        srv.call(srv.app.accounts.add_user(org.id, "alice", password=PASSWORD, home="/alice"))
        srv.call(srv.app.accounts.add_user(org.id, "bob", password=PASSWORD, home="/bob"))
        transport = paramiko.Transport(("127.0.0.1", srv.app.sftp.port))
        transport.connect(username="alice", password=PASSWORD)
        other = paramiko.Transport(("127.0.0.1", srv.app.sftp.port))
        other.connect(username="bob", password=PASSWORD)
        witness = paramiko.SFTPClient.from_transport(other)
        assert witness is not None
        with witness.open("witness.txt", "wb") as fh:
            fh.write(MARKER)
        held = witness.open("witness.txt", "rb")  # another session's open handle
        FOREIGN[:] = [held.handle]
        base_fds, base_sessions = open_fds(), srv.session_count()
        stats: dict[str, int] = dict.fromkeys(
            ["status_ok", "status_error", "answered", "uncaught", "escaped", "closed_by_server",
             "requests", "malformed", "cases", "crashed", "leaked", "hung"], 0,
        )  # fmt: skip

        @hsettings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            # No shrinking: what a case draws depends on the server's answers (the handles it
            # gave), so a replay draws differently, and hypothesis would report that
            # ("FlakyStrategyDefinition") in place of the failure itself.
            phases=[Phase.explicit, Phase.generate],
        )
        @given(data=st.data())
        def case(data: st.DataObject) -> None:
            stats["cases"] += 1
            session = RawSession(transport)
            try:
                exercise(session, data)
            except Closed:
                stats["closed_by_server"] += 1
            except TimeoutError:
                stats["hung"] += 1
            finally:
                session.close()
            # The rest of the server: alive, the other session answers, nothing left open.
            if not srv.alive():
                stats["crashed"] += 1
            try:
                witness.stat(".")
                held.seek(0)
                assert held.read(len(MARKER)) == MARKER
            except (OSError, EOFError, paramiko.SSHException):
                stats["crashed"] += 1
            fds, sessions = srv.settle(base_fds, base_sessions)
            if (fds, sessions) != (base_fds, base_sessions):
                stats["leaked"] += 1

        def exercise(session: RawSession, data: st.DataObject) -> None:
            own: list[bytes] = []
            if data.draw(st.integers(0, 19)) == 0:
                # A broken start: no INIT, or an INIT of another version.
                first = data.draw(
                    st.one_of(
                        st.builds(lambda v: bytes([INIT]) + u32(v), st.integers(0, 2**32 - 1)),
                        st.binary(min_size=1, max_size=16),
                    )
                )
                stats["malformed"] += 1
                session.send(frame(first))
                try:
                    reply = session.receive()
                    assert reply[0] == VERSION, f"answered a bad start with {reply[0]}"
                except Closed:
                    stats["closed_by_server"] += 1
                    return
            else:
                session.send(frame(bytes([INIT]) + u32(3)))
                assert session.receive()[0] == VERSION
            for request_id in range(1, data.draw(st.integers(0, 10)) + 1):
                kind = data.draw(st.sampled_from(KINDS))
                body = bytes([kind]) + u32(request_id) + request_body(data.draw, kind, handles(own))
                if data.draw(st.integers(0, 9)) == 0:
                    # Cut inside or padded after the fields, framed correctly.
                    cut = data.draw(st.integers(5, len(body)))
                    body = body[:cut] + data.draw(st.binary(max_size=4))
                    stats["malformed"] += 1
                stats["requests"] += 1
                session.send(frame(body))
                reply = session.receive()
                check_reply(reply, request_id, stats, body)
                if reply[0] == HANDLE:
                    own.append(reply[9 : 9 + struct.unpack(">I", reply[5:9])[0]])
            tail = data.draw(st.sampled_from(["none", "unknown", "garbage", "framing"]))
            if tail == "unknown":
                kind = data.draw(UNKNOWN_KINDS)
                stats["malformed"] += 1
                session.send(frame(bytes([kind]) + u32(999) + data.draw(st.binary(max_size=16))))
                reply = session.receive()
                check_reply(reply, 999, stats)
            elif tail == "garbage":
                stats["malformed"] += 1
                session.send(frame(data.draw(st.binary(min_size=0, max_size=12))))
                try:
                    reply = session.receive()
                    assert reply[0] in REPLIES
                except Closed:
                    stats["closed_by_server"] += 1
            elif tail == "framing":
                stats["malformed"] += 1
                size = data.draw(st.sampled_from([MAX_PACKET + 1, 2**31, 2**32 - 1, 1 << 24, 100]))
                session.send(u32(size) + data.draw(st.binary(max_size=64)))
                if size > MAX_PACKET:
                    if not session.wait_closed(10):
                        stats["hung"] += 1
                    else:
                        stats["closed_by_server"] += 1

        try:
            case()
        finally:
            ledger.record(
                "sftp fuzzing",
                "hypothesis: malformed, truncated, mis-sized, unknown and out-of-order requests",
                tried=stats["cases"],
                crashed=stats["crashed"] + stats["uncaught"] + stats["hung"],
                leaked=stats["leaked"],
                escaped=stats["escaped"],
                note=(
                    f"{stats['requests']} requests ({stats['malformed']} malformed): "
                    f"{stats['status_error']} error statuses, {stats['status_ok']} OK, "
                    f"{stats['answered']} data/handle/name replies; "
                    f"{stats['closed_by_server']} sessions closed by the server; "
                    f"{stats['uncaught']} uncaught exceptions, {stats['hung']} hung"
                ),
            )
        held.close()
        witness.close()
        transport.close()
        other.close()
        assert srv.open_transfers() == 0
    for key in ("crashed", "leaked", "escaped", "uncaught", "hung"):
        assert stats[key] == 0, (stats, UNCAUGHT[:5])


def test_what_the_fuzzer_found_stays_fixed(fuzz_settings: Settings) -> None:
    """A directory handle left open held its descriptor for good; offsets past 2^63, a NUL in a
    link target and an INIT of an old version came back as "Uncaught exception"."""
    with ThreadedServer(fuzz_settings, frozenset({"sftp"})) as srv:
        org = srv.call(srv.app.accounts.resolve_organization(None))
        srv.call(srv.app.accounts.add_user(org.id, "alice", password=PASSWORD))
        transport = paramiko.Transport(("127.0.0.1", srv.app.sftp.port))
        transport.connect(username="alice", password=PASSWORD)
        witness = paramiko.SFTPClient.from_transport(transport)
        assert witness is not None
        witness.stat(".")
        base = (open_fds(), srv.session_count())
        requests = [
            bytes([OPENDIR]) + u32(1) + string(b"."),
            bytes([OPEN]) + u32(2) + string(b"f.txt") + u32(0x1A) + u32(0),
            bytes([WRITE]) + u32(3) + string(b"\0\0\0\1") + u64(2**63) + string(b"x"),
            bytes([READ]) + u32(4) + string(b"\0\0\0\1") + u64(2**64 - 1) + u32(10),
            bytes([SYMLINK]) + u32(5) + string(b"a\x00b") + string(b"link"),
        ]
        session = RawSession(transport)
        session.send(frame(bytes([INIT]) + u32(3)))
        assert session.receive()[0] == VERSION
        for request_id, body in enumerate(requests, 1):
            session.send(frame(body))
            reply = session.receive()
            assert reply[0] in REPLIES and b"Uncaught" not in reply, reply
            assert struct.unpack(">I", reply[1:5])[0] == request_id
        session.close()  # the directory and the file still open
        assert srv.settle(*base) == base
        # A client asking for SFTP version 0, 1 or 2 is answered with 3 and then served: asyncssh
        # took the lower version and failed on the attributes of its requests ("Uncaught
        # exception: 0").
        for old_version in (0, 1, 2):
            session = RawSession(transport)
            session.send(frame(bytes([INIT]) + u32(old_version)))
            version = session.receive()
            assert version[0] == VERSION and struct.unpack(">I", version[1:5])[0] == 3
            session.send(frame(bytes([OPEN]) + u32(1) + string(b"a") + u32(1) + u32(0)))
            reply = session.receive()
            assert reply[0] == STATUS and b"Uncaught" not in reply, reply
            session.close()
        witness.close()
        transport.close()
