"""SFTP throughput to S3-compatible storage against local disk, with OpenSSH's `sftp`.

Starts a throwaway Ceph radosgw on 127.0.0.1 (or uses --endpoint), then for each backend a
`sftphook serve --roles sftp` process with its own data directory (events recorded as always),
and times the same `sftp -b` batches against both:

    bulk put / bulk get    one file of --size-mb MiB (default 256)
    small put / small get  --small-files files of 4 KiB (default 500)

Every transfer is checked (SHA-256 of what came back); the table shows the best of --repeat
runs and the ratio S3 / local of the throughputs (1.0: S3 as fast as local disk).

    PYTHONPATH=src /work/main/.venv/bin/python bench/storage.py [--quick]

`run(...)` returns the rows (and prints the table) for `bench/scaleout.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in (ROOT / "src", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

SMALL_FILE_SIZE = 4096
OPERATIONS = ("bulk put", "bulk get", "small put", "small get")
_LISTENING = re.compile(r"SFTP on 127\.0\.0\.1:(\d+)")


class BenchError(RuntimeError):
    """A server would not start or a transfer went wrong: the numbers would mean nothing."""


@dataclasses.dataclass(frozen=True)
class Row:
    operation: str
    unit: str  # "MiB/s" or "files/s"
    local: float  # throughput on local disk
    s3: float  # throughput on S3

    @property
    def ratio(self) -> float:
        return self.s3 / self.local if self.local else 0.0


@dataclasses.dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str


@contextmanager
def radosgw(memory_mb: int) -> Iterator[S3Endpoint]:
    from tests.support import radosgw as support

    missing = support.missing_binaries()
    if missing:
        raise BenchError(f"Ceph's radosgw is not installed (missing {', '.join(missing)})")
    root = Path(tempfile.mkdtemp(prefix="bench-ceph-"))
    gateway = support.start(root, memory_mb=memory_mb)
    try:
        yield S3Endpoint(gateway.endpoint, gateway.access_key, gateway.secret_key)
    finally:
        gateway.stop()
        shutil.rmtree(root, ignore_errors=True)


def _prepare(data_dir: Path, storage: dict[str, str], public_key: str) -> None:
    """Schema, the default organization and the user `bench` (key login)."""
    from sftphook.app import App
    from sftphook.config import Settings

    async def work() -> None:
        app = App(Settings.load(data_dir=data_dir, storage=storage))
        try:
            await app.prepare()
            org = await app.accounts.resolve_organization(None)
            await app.accounts.add_user(org.id, "bench", public_keys=[public_key])
        finally:
            await app.db.close()

    asyncio.run(work())


@contextmanager
def serving(data_dir: Path, storage: dict[str, str]) -> Iterator[int]:
    """`sftphook serve --roles sftp` in a process of its own; yields its port."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "SFTPHOOK_DATA_DIR": str(data_dir),
        "SFTPHOOK_SFTP__HOST": "127.0.0.1",
        "SFTPHOOK_SFTP__PORT": "0",
        "SFTPHOOK_HTTP__OPS_ENDPOINTS": "false",  # nothing scrapes it here
        **{f"SFTPHOOK_STORAGE__{k.upper()}": v for k, v in storage.items()},
    }
    log = data_dir / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sftphook", "serve", "--roles", "sftp"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            match = _LISTENING.search(log.read_text(errors="replace"))
            if match:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"sftphook did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield int(match.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _sftp(port: int, key: Path, batch: str, work: Path) -> float:
    script = work / "batch"
    script.write_text(batch)
    argv = [
        "sftp", "-b", str(script), "-P", str(port), "-i", str(key),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes",
        "bench@127.0.0.1",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, timeout=1800)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"sftp failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _measure(
    port: int, key: Path, work: Path, big: Path, small: Path, repeat: int
) -> dict[str, float]:
    """Best time in seconds of each operation, each transfer checked."""
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(seconds, best.get(name, seconds))

    files = sorted(small.iterdir())
    for round_ in range(repeat):
        back = work / f"back-{round_}"
        back.mkdir()
        keep("bulk put", _sftp(port, key, f"put {big} big.bin\n", work))
        keep("bulk get", _sftp(port, key, f"get big.bin {back}/big.bin\n", work))
        if _digest(back / "big.bin") != _digest(big):
            raise BenchError("the file downloaded differs from the one uploaded")
        (back / "big.bin").unlink()
        target = f"small{round_}"
        keep("small put", _sftp(port, key, f"mkdir {target}\nput {small}/* {target}/\n", work))
        (back / "small").mkdir()
        keep("small get", _sftp(port, key, f"get {target}/* {back}/small/\n", work))
        got = sorted((back / "small").iterdir())
        if [p.name for p in got] != [p.name for p in files] or any(
            a.read_bytes() != b.read_bytes() for a, b in zip(got, files, strict=True)
        ):
            raise BenchError("the small files downloaded differ from the ones uploaded")
        shutil.rmtree(back)
    return best


def run(
    *,
    size_mb: int = 256,
    small_files: int = 500,
    repeat: int = 2,
    endpoint: S3Endpoint | None = None,
    echo: bool = True,
) -> list[Row]:
    """Time both backends; print the table when `echo`; return its rows."""
    if shutil.which("sftp") is None:
        raise BenchError("OpenSSH's sftp client is not installed")
    from sftphook.sftp import hostkeys

    work = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    try:
        import asyncssh

        client_key = asyncssh.generate_private_key("ssh-ed25519")
        key = work / "id_ed25519"
        key.write_bytes(client_key.export_private_key())
        key.chmod(0o600)
        public = client_key.export_public_key().decode().strip()
        shared_keys = work / "host_keys"
        hostkeys.load_or_create(shared_keys)
        big = work / "big.bin"
        with big.open("wb") as fh:
            for _ in range(size_mb):
                fh.write(os.urandom(1 << 20))
        small = work / "small"
        small.mkdir()
        for i in range(small_files):
            (small / f"f{i:04d}.txt").write_bytes(os.urandom(SMALL_FILE_SIZE))

        def time_backend(name: str, storage: dict[str, str]) -> dict[str, float]:
            data_dir = work / name
            shutil.copytree(shared_keys, data_dir / "host_keys")
            _prepare(data_dir, storage, public)
            scratch = work / f"{name}-scratch"
            scratch.mkdir()
            with serving(data_dir, storage) as port:
                return _measure(port, key, scratch, big, small, repeat)

        local = time_backend("local", {"backend": "local"})

        def time_s3(s3: S3Endpoint) -> dict[str, float]:
            return time_backend(
                "s3",
                {
                    "backend": "s3",
                    "endpoint_url": s3.url,
                    "bucket": "bench",
                    "access_key_id": s3.access_key,
                    "secret_access_key": s3.secret_key,
                },
            )

        if endpoint is not None:
            on_s3 = time_s3(endpoint)
        else:
            # Room for the objects of every round, kept in the OSD's memory.
            memory = max(1024, (size_mb * (repeat + 1)) + 512)
            with radosgw(memory) as s3:
                on_s3 = time_s3(s3)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for operation in OPERATIONS:
        amount, unit = (
            (size_mb, "MiB/s") if operation.startswith("bulk") else (small_files, "files/s")
        )
        rows.append(Row(operation, unit, amount / local[operation], amount / on_s3[operation]))
    if echo:
        print_table(rows, size_mb=size_mb, small_files=small_files, repeat=repeat)
    return rows


def print_table(rows: list[Row], *, size_mb: int, small_files: int, repeat: int) -> None:
    print(
        f"SFTP throughput, S3 (radosgw) vs local disk: OpenSSH sftp, bulk = one {size_mb} MiB "
        f"file, small = {small_files} x 4 KiB files, best of {repeat}"
    )
    print(f"{'operation':<10} | {'unit':<7} | {'local':>8} | {'S3':>8} | {'S3/local':>8}")
    print(f"{'-' * 10}-+-{'-' * 7}-+-{'-' * 8}-+-{'-' * 8}-+-{'-' * 8}")
    for row in rows:
        print(
            f"{row.operation:<10} | {row.unit:<7} | {row.local:>8.1f} | {row.s3:>8.1f} | "
            f"{row.ratio:>8.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--small-files", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="32 MiB, 50 files, one round")
    parser.add_argument("--endpoint", help="an S3 endpoint to use instead of a private radosgw")
    args = parser.parse_args(argv)
    endpoint = None
    if args.endpoint:
        endpoint = S3Endpoint(
            args.endpoint,
            os.environ.get("AWS_ACCESS_KEY_ID", ""),
            os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        )
    if args.quick:
        args.size_mb, args.small_files, args.repeat = 32, 50, 1
    try:
        run(
            size_mb=args.size_mb,
            small_files=args.small_files,
            repeat=args.repeat,
            endpoint=endpoint,
        )
    except BenchError as exc:
        print(f"bench/storage.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
