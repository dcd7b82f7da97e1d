"""Path confinement corpus: every hostile path spelling tried through every SFTP operation, link
escapes, and races against the tree while another session uses it — zero escapes.

Sentinels are planted outside the user's home (beside it in the organization, above the
organization root, above the data directory) with a marker in their content; an escape is any
reply carrying the marker or a name that exists only outside the home, and any sentinel (or any
file outside the home) that was changed, removed or appeared after the run."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path

import asyncssh
import pytest

from sftphook.storage.local import UPLOADS_DIR
from sftphook.storage.spares import SPARES_DIR
from tests.reliability.conftest import SOAK, Ledger
from tests.sftp.conftest import (  # noqa: F401
    Server,
    client_key,
    host_keys_cache,
    server,
)

MARKER = b"SENTINEL-c0ffee-outside-the-home"
SENTINEL_NAMES = ("org-sentinel.txt", "root-sentinel.txt", "host-sentinel.txt", "sib-secret.txt")
HOME = "/homes/carol"
PASSWORD = "carol's long passphrase"
RACE_SECONDS = 15.0 if SOAK else 2.0


def hostile_paths(host_sentinel: Path, org_sentinel: Path) -> list[str]:
    """Spellings that a text-only chroot gets wrong, aimed at the sentinels."""
    targets = ["org-sentinel.txt", "sibling/sib-secret.txt", "sibling", ""]
    paths: list[str] = []
    prefixes = ["", "/", "//", "a/b/../../"]
    if SOAK:
        prefixes += ["./", "a/", ".//..//", "x/../"]
    for depth in range(1, 6 if SOAK else 4):
        up = "../" * depth
        for target in targets:
            for prefix in prefixes:
                paths.append(prefix + up + target)
    paths += [
        # .. in every position
        "..", "../", "/..", "/../..", "a/..", "a/../..", "a/b/../../..", "../a/../..",
        ".." + "/.." * 30, "../" * 5000 + "etc/passwd", "x/" * 50 + "../" * 60 + "etc",
        # absolute host paths and the host's own files
        str(host_sentinel), str(org_sentinel), str(org_sentinel.parent), "/etc/passwd",
        "/proc/self/environ", "/proc/self/cwd/", "/proc/self/root/etc/passwd", "/dev/zero",
        # //, backslashes, URL escapes
        "//etc/passwd", "///../org-sentinel.txt", "..\\org-sentinel.txt", "..\\..\\",
        "\\..\\..\\org-sentinel.txt", "..%2forg-sentinel.txt", "%2e%2e/org-sentinel.txt",
        "%2e%2e%2f%2e%2e%2forg-sentinel.txt", "..;/org-sentinel.txt",
        # NUL bytes
        "ok\x00/../../org-sentinel.txt", "..\x00", "../org-sentinel.txt\x00.jpg", "\x00",
        # overlong names and paths
        "a" * 255, "a" * 256, "a" * 4096, "a/" * 2100, "../" + "b" * 300,
        # unicode tricks: fullwidth, one-dot leaders, combining marks, NFD and NFC
        "\uff0e\uff0e\uff0forg-sentinel.txt", "\uff0e\uff0e/org-sentinel.txt",
        "..\uff0forg-sentinel.txt", "\u2024\u2024/org-sentinel.txt", "\u2025/org-sentinel.txt",
        ".\u0338./org-sentinel.txt", "\u002e\u002e\u2215org-sentinel.txt",
        "\ufe52\ufe52/org-sentinel.txt", "caf\u00e9/../../org-sentinel.txt",
        "cafe\u0301/../../org-sentinel.txt", "..\u200b/org-sentinel.txt",
        "\u202e../org-sentinel.txt",
    ]  # fmt: skip
    return paths


def snapshot(base: Path, home: Path, skip: tuple[Path, ...]) -> dict[str, tuple[object, ...]]:
    """Every entry under `base` outside `home` (and `skip`): type, mode, size, mtime, content."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        here = Path(dirpath)
        dirnames[:] = [
            d for d in dirnames if here / d != home and not any(here / d == s for s in skip)
        ]
        for name in dirnames + filenames:
            path = here / name
            if any(path == s or s in path.parents for s in skip):
                continue
            if path.name.startswith("sftphook.db"):
                continue  # the server's own database changes as it records events
            s = path.lstat()
            digest = ""
            if path.is_file() and not path.is_symlink():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(base))] = (s.st_mode, s.st_size, s.st_mtime_ns, digest)
    return out


class Tally:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.tried = 0
        self.escaped: list[str] = []
        self.refused = 0
        self.accepted = 0

    def home_names(self) -> set[str]:
        names: set[str] = {".", ".."}
        for _dirpath, dirnames, filenames in os.walk(self.home):
            names.update(dirnames)
            names.update(filenames)
        return names

    def judge(self, op: str, path: str, result: object) -> None:
        text = repr(result).encode(errors="replace")
        if MARKER in text or (isinstance(result, bytes) and MARKER in result):
            self.escaped.append(f"{op} {path!r} read a sentinel")
        if isinstance(result, list) and all(isinstance(n, str) for n in result):
            foreign = set(result) - self.home_names()
            # The server's I/O threads and the swapper rename directories while this walks the
            # home: a directory moved mid-walk hides its names from one walk, not from all.
            for _ in range(20):
                if not foreign:
                    break
                time.sleep(0.001)
                foreign -= self.home_names()
            if foreign:
                self.escaped.append(f"{op} {path!r} listed {sorted(foreign)[:5]}")
        if op == "readlink" and isinstance(result, str) and result.startswith("/"):
            self.escaped.append(f"{op} {path!r} revealed a host path {result}")

    async def attempt(self, op: str, path: str, action: object) -> None:
        self.tried += 1
        try:
            result = await asyncio.wait_for(action, 10)  # type: ignore[arg-type]
        except (asyncssh.SFTPError, UnicodeError, ValueError):
            self.refused += 1
            return
        self.accepted += 1
        self.judge(op, path, result)


async def read_file(sftp: asyncssh.SFTPClient, path: str) -> bytes:
    async with sftp.open(path, "rb") as fh:
        return await fh.read(1 << 16)


async def append_file(sftp: asyncssh.SFTPClient, path: str) -> None:
    async with sftp.open(path, "ab") as fh:
        await fh.write(b"appended by the client")


async def write_file(sftp: asyncssh.SFTPClient, path: str) -> None:
    async with sftp.open(path, "wb") as fh:
        await fh.write(b"written by the client")


async def operations(sftp: asyncssh.SFTPClient, tally: Tally, path: str) -> None:
    """One hostile path through every operation that names a path."""
    ops = {
        "stat": lambda: sftp.stat(path),
        "lstat": lambda: sftp.lstat(path),
        "read": lambda: read_file(sftp, path),
        "listdir": lambda: sftp.listdir(path),
        "readlink": lambda: sftp.readlink(path),
        "realpath": lambda: sftp.realpath(path),
        "write": lambda: write_file(sftp, path),
        "append": lambda: append_file(sftp, path),
        "mkdir": lambda: sftp.mkdir(path),
        "chmod": lambda: sftp.chmod(path, 0o777),
        "utime": lambda: sftp.utime(path, (1, 1)),
        "truncate": lambda: sftp.truncate(path, 0),
        "rename-in": lambda: sftp.rename(path, "taken.txt"),
        "rename-out": lambda: sftp.rename("mine.txt", path),
        "posix-rename-out": lambda: sftp.posix_rename("mine.txt", path),
        "link-in": lambda: sftp.link(path, "hardlinked.txt"),
        "link-out": lambda: sftp.link("mine.txt", path),
        "symlink-to": lambda: sftp.symlink(path, "sym"),
        "symlink-at": lambda: sftp.symlink("mine.txt", path),
        "remove": lambda: sftp.remove(path),
        "rmdir": lambda: sftp.rmdir(path),
        "statvfs": lambda: sftp.statvfs(path),
    }
    for op, make in ops.items():
        result_holder = make()
        await tally.attempt(op, path, result_holder)
        if op == "symlink-to":
            # Whatever the link was made to, using it must stay inside.
            for follow_op, action in (
                ("read-via-link", read_file(sftp, "sym")),
                ("list-via-link", sftp.listdir("sym")),
                ("stat-via-link", sftp.stat("sym")),
            ):
                await tally.attempt(follow_op, path, action)
            await tally.attempt("unlink", "sym", sftp.remove("sym"))
        if op in ("rename-out", "posix-rename-out") and not await sftp.exists("mine.txt"):
            await write_file(sftp, "mine.txt")


@pytest.fixture
async def planted(server: Server) -> tuple[Server, Path, Path, Path]:  # noqa: F811
    """The user carol in /homes/carol, and sentinels all around her home."""
    await server.app.accounts.add_user(server.org_id, "carol", password=PASSWORD, home=HOME)
    org_root = server.root
    home = org_root / HOME.strip("/")
    home.mkdir(parents=True, exist_ok=True)
    (org_root / "org-sentinel.txt").write_bytes(MARKER + b" org")
    (org_root / "sibling").mkdir()
    (org_root / "sibling" / "sib-secret.txt").write_bytes(MARKER + b" sibling")
    files_root = server.app.settings.files_root
    (files_root / "root-sentinel.txt").write_bytes(MARKER + b" files root")
    base = server.app.settings.data_dir.resolve().parent
    (base / "host-sentinel.txt").write_bytes(MARKER + b" host")
    for path in (org_root / "org-sentinel.txt", base / "host-sentinel.txt"):
        path.chmod(0o600)
    return server, home, base, files_root


async def test_hostile_paths_through_every_operation_stay_in_the_home(
    planted: tuple[Server, Path, Path, Path], ledger: Ledger
) -> None:
    srv, home, base, files_root = planted
    skip = (files_root / UPLOADS_DIR, files_root / SPARES_DIR, srv.app.settings.host_keys_dir)
    before = snapshot(base, home, skip)
    tally = Tally(home)
    corpus = hostile_paths(base / "host-sentinel.txt", srv.root / "org-sentinel.txt")
    async with (
        await srv.connect(username="carol", password=PASSWORD) as conn,
        conn.start_sftp_client() as sftp,
    ):
        await write_file(sftp, "mine.txt")
        for path in corpus:
            await operations(sftp, tally, path)
        # Links made from inside the home that lead out, then used.
        for target in ("..", "../..", "../../org-sentinel.txt", "/../org-sentinel.txt"):
            await tally.attempt("symlink", target, sftp.symlink(target, "out"))
            for op, action in (
                ("read", read_file(sftp, "out")),
                ("list", sftp.listdir("out")),
                ("write", write_file(sftp, "out/planted.txt")),
            ):
                await tally.attempt(op, "out -> " + target, action)
            if await sftp.exists("out") or await _is_link(sftp, "out"):
                await sftp.remove("out")
    after = snapshot(base, home, skip)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    tally.escaped += [f"outside the home changed: {k}" for k in changed]
    ledger.record(
        "path confinement",
        f"{len(corpus)} hostile paths x 22 operations; links made inside, then used",
        tried=tally.tried,
        escaped=len(tally.escaped),
        note=f"{tally.refused} refused, {tally.accepted} confined to the home",
    )
    assert not tally.escaped, tally.escaped[:20]


async def _is_link(sftp: asyncssh.SFTPClient, path: str) -> bool:
    try:
        await sftp.lstat(path)
    except asyncssh.SFTPError:
        return False
    return True


async def test_races_against_the_tree_stay_in_the_home(
    planted: tuple[Server, Path, Path, Path], ledger: Ledger
) -> None:
    """A directory renamed by one session while another uses it; a directory swapped for a
    link that leads out (placed by the host) while a session reads through it."""
    srv, home, base, files_root = planted
    outside = srv.root / "sibling"
    (home / "work").mkdir()
    (home / "work" / "f.txt").write_bytes(b"inside")
    (home / "swap").mkdir()
    (home / "swap" / "sib-secret.txt").write_bytes(b"inside")
    # The link a careless host could leave: relative, climbing to a sibling's home.
    (home / "swap.link").symlink_to("../../sibling")
    skip = (files_root / UPLOADS_DIR, files_root / SPARES_DIR, srv.app.settings.host_keys_dir)
    before = snapshot(base, home, skip)
    tally = Tally(home)
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        swap, real, link = home / "swap", home / "swap.real", home / "swap.link"
        while not stop.is_set():
            os.rename(swap, real)
            os.rename(link, swap)
            time.sleep(0.0005)
            os.rename(swap, link)
            os.rename(real, swap)
            swaps += 1

    async def renamer(sftp: asyncssh.SFTPClient, deadline: float) -> int:
        count = 0
        while time.monotonic() < deadline:
            for old, new in (("work", "work2"), ("work2", "work")):
                try:
                    await sftp.rename(old, new)
                    count += 1
                except asyncssh.SFTPError:
                    pass
        return count

    async def user(sftp: asyncssh.SFTPClient, deadline: float) -> None:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            for op, path, action in (
                ("read", "work/f.txt", read_file(sftp, "work/f.txt")),
                ("write", f"work/w{n % 5}.txt", write_file(sftp, f"work/w{n % 5}.txt")),
                ("list", "work/../work", sftp.listdir("work/../work")),
                ("read", "swap/sib-secret.txt", read_file(sftp, "swap/sib-secret.txt")),
                ("list", "swap", sftp.listdir("swap")),
                ("write", "swap/planted.txt", write_file(sftp, "swap/planted.txt")),
                ("stat", "swap/../org-sentinel.txt", sftp.stat("swap/../org-sentinel.txt")),
                ("chmod", "swap/sib-secret.txt", sftp.chmod("swap/sib-secret.txt", 0o777)),
            ):
                await tally.attempt(op, path, action)

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        async with (
            await srv.connect(username="carol", password=PASSWORD) as one,
            await srv.connect(username="carol", password=PASSWORD) as two,
            one.start_sftp_client() as a,
            two.start_sftp_client() as b,
        ):
            deadline = time.monotonic() + RACE_SECONDS
            renames, _ = await asyncio.gather(renamer(a, deadline), user(b, deadline))
    finally:
        stop.set()
        thread.join(10)
    after = snapshot(base, home, skip)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    tally.escaped += [f"outside the home changed: {k}" for k in changed]
    assert (outside / "sib-secret.txt").read_bytes() == MARKER + b" sibling"
    assert sorted(os.listdir(outside)) == ["sib-secret.txt"]
    ledger.record(
        "path confinement",
        "races: directory renamed under a session; directory swapped for an outward link",
        tried=tally.tried,
        escaped=len(tally.escaped),
        note=f"{renames} renames and {swaps} swaps in {RACE_SECONDS:.0f} s; "
        f"{tally.refused} refused, {tally.accepted} confined",
    )
    assert not tally.escaped, tally.escaped[:20]
    assert swaps > 0 and renames > 0
