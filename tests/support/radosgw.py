"""A throwaway single-node Ceph (one monitor, one memory-backed OSD) and its S3 gateway.

Ceph's radosgw from Debian is a real S3-compatible server; this starts one on 127.0.0.1 in about
fifteen seconds, for the tests that need real S3 semantics (multipart, ranges, copy, listings).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


@dataclasses.dataclass
class Radosgw:
    root: Path
    endpoint: str
    access_key: str
    secret_key: str
    conf: Path

    def stop(self) -> None:
        """Stop every daemon this instance started, by the PID files it wrote."""
        for pid_file in sorted((self.root / "run").glob("*.pid")):
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGTERM)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                continue
        deadline = time.monotonic() + 10
        for pid_file in (self.root / "run").glob("*.pid"):
            try:
                pid = int(pid_file.read_text().strip())
            except (ValueError, FileNotFoundError):
                continue
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _run(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def start(root: Path, *, memory_mb: int = 1024) -> Radosgw:
    """Start a monitor, an OSD and the gateway under `root`; returns once S3 answers."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("run", "log", "mon.a", "osd.0", "rgw"):
        (root / sub).mkdir(exist_ok=True)
    fsid = str(uuid.uuid4())
    mon_port, rgw_port = _free_port(), _free_port()
    conf = root / "ceph.conf"
    conf.write_text(
        f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
auth cluster required = none
auth service required = none
auth client required = none
# With authentication off, the messenger must not try to negotiate secure mode.
ms_mode = crc
ms_cluster_mode = crc
ms_service_mode = crc
ms_client_mode = crc
ms_bind_msgr2 = false
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8
run dir = {root}/run
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
pid file = {root}/run/$name.pid
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon max pg per osd = 1000
osd pool default pg num = 8
osd pool default pgp num = 8
osd objectstore = memstore
memstore device bytes = {memory_mb * 1024 * 1024}
osd data = {root}/$name
mon data = {root}/$name
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd crush chooseleaf type = 0
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
"""
    )
    c = str(conf)
    _run(
        "monmaptool", "--create", "--addv", "a", f"[v1:127.0.0.1:{mon_port}]",
        "--fsid", fsid, "--clobber", str(root / "monmap"),
    )  # fmt: skip
    _run("ceph-mon", "--mkfs", "-i", "a", "-c", c, "--monmap", str(root / "monmap"))
    _run("ceph-mon", "-i", "a", "-c", c)
    instance = Radosgw(
        root, f"http://127.0.0.1:{rgw_port}", "sftphooktest", "sftphooktestsecret", conf
    )
    try:
        # The monitor takes commands a moment after it starts: before that a command fails
        # with "EPERM: problem getting command descriptions from mon".
        _wait(lambda: "quorum" in _run("ceph", "-c", c, "mon", "stat", timeout=10), 60, "monitor")
        osd_uuid = str(uuid.uuid4())
        _run("ceph", "-c", c, "osd", "create", osd_uuid, timeout=30)
        _run("ceph-osd", "-i", "0", "-c", c, "--mkfs", "--osd-uuid", osd_uuid)
        # The OSD's first start is sometimes refused by the monitor ("wrong fsid" while it
        # registers its device class; about one start in three here, four in a row once on a
        # machine that had just installed Ceph): it succeeds when tried again a moment later,
        # on the same store. Waiting for the OSD's entry in the map first makes it rarer.
        _wait(lambda: osd_uuid in _run("ceph", "-c", c, "osd", "dump", timeout=10), 30, "OSD map")
        attempts = 7
        for attempt in range(attempts):
            try:
                _run("ceph-osd", "-i", "0", "-c", c)
                break
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                time.sleep(1 + attempt)
        _wait(lambda: "1 up" in _run("ceph", "-c", c, "osd", "stat", timeout=10), 60, "OSD up")
        _run("radosgw", "-c", c, "-n", "client.rgw")
        _wait(lambda: _http_ok(instance.endpoint), 90, "radosgw answering")
        _run(
            "radosgw-admin", "-c", c, "user", "create", "--uid=sftphook",
            "--display-name=sftphook tests", f"--access-key={instance.access_key}",
            f"--secret={instance.secret_key}",
        )  # fmt: skip
    except Exception:
        instance.stop()
        raise
    return instance


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _wait(check, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"timed out waiting for {what}")
