"""The ops endpoints' own app (`api/ops.py`), built without the dashboard or the API; and what
`/readyz` checks for each role. (tests/cli/test_serve_ops_endpoints.py runs it in real nodes.)"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from sftphook.api.ops import create_ops_app
from sftphook.app import App
from sftphook.config import Settings
from sftphook.storage.local import writable
from sftphook.storage.readiness import StorageReadiness
from tests.cli.conftest import SRC
from tests.conftest import serving


def test_the_ops_app_loads_neither_the_dashboard_nor_the_api(tmp_path: Path) -> None:
    # In a fresh interpreter: this one has imported every module already.
    script = (
        "import sys\n"
        "from sftphook.app import App\n"
        "from sftphook.api.ops import create_ops_app\n"
        "from sftphook.config import Settings\n"
        "create_ops_app(App(Settings.load(data_dir=sys.argv[1])))\n"
        "names = [m for m in sys.modules if m.startswith(('sftphook.api', 'sftphook.web'))]\n"
        "print(sorted(m for m in names if not m.startswith('sftphook.webhooks')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (modules,) = done.stdout.splitlines()
    # The two routers, the App dependency, and the problem+json errors (with their schema).
    assert modules == str(
        sorted(
            f"sftphook.api{name}"
            for name in ("", ".deps", ".health", ".metrics", ".ops", ".problems", ".schemas")
        )
    )


async def test_readyz_names_each_role_that_is_not_working_yet(app: App) -> None:
    """A node whose roles have not started (or have begun to stop) is not ready, whatever the
    database says."""
    app.roles = frozenset({"sftp", "worker"})
    ops = create_ops_app(app)
    transport = httpx.ASGITransport(app=ops)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        answer = await client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json() == {
            "status": "unavailable",
            "database": "ok",
            "sftp": "not listening",
            "storage": "not open",
            "worker": "not claiming",
        }
        assert (await client.get("/healthz")).status_code == 200

        app.roles = frozenset()
        assert (await client.get("/readyz")).json() == {"status": "ok", "database": "ok"}


async def test_readyz_of_a_running_node_answers_503_once_its_worker_stops_claiming(
    settings: Settings,
) -> None:
    async with (
        serving(settings, frozenset({"sftp", "worker"})) as node,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http_port}") as client,
    ):
        answer = await client.get("/readyz")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "status": "ok",
            "database": "ok",
            "sftp": "ok",
            "storage": "ok",
            "worker": "ok",
        }
        # As at a shutdown, where the balancer should stop sending before the node stops.
        await node.engine.stop()
        answer = await client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["worker"] == "not claiming"
        assert answer.json()["sftp"] == "ok"


async def test_readyz_of_an_sftp_node_answers_503_when_its_files_root_is_gone_or_another(
    settings: Settings,
) -> None:
    """What an unmounted volume looks like from the node: the directory gone, or the empty mount
    point under it (another directory at the same path); a file there is no better."""
    root = settings.files_root
    aside = root.with_name("files.aside")
    async with (
        serving(settings, frozenset({"sftp"})) as node,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http_port}") as client,
    ):

        async def storage() -> tuple[int, str]:
            answer = await client.get("/readyz")
            return answer.status_code, answer.json()["storage"]

        assert await storage() == (200, "ok")
        root.rename(aside)
        try:
            assert await storage() == (503, "files root missing")
            root.mkdir()
            assert await storage() == (503, "files root replaced")
            root.rmdir()
            root.write_bytes(b"")
            assert await storage() == (503, "files root not a directory")
            root.unlink()
        finally:
            aside.rename(root)
        assert await storage() == (200, "ok")


def test_a_read_only_files_root_is_named_as_such_even_to_root() -> None:
    # `access(W_OK)` says yes to root on a directory without write bits (but not on a read-only
    # mount); the mount's flag names the cause either way.
    assert writable(0, True) == "ok"
    assert writable(os.ST_RDONLY, True) == "files root read-only"
    assert writable(os.ST_RDONLY | os.ST_NOSUID, False) == "files root read-only"
    assert writable(os.ST_NOSUID, False) == "files root not writable"


async def test_a_storage_check_that_hangs_answers_timed_out_and_is_not_started_again() -> None:
    """A hung NFS mount holds the check's thread in the kernel: each probe answers at the
    deadline, and none starts another thread to hang beside it."""

    class Hung:
        def __init__(self) -> None:
            self.release = threading.Event()
            self.calls = 0

        def check(self) -> str:
            self.calls += 1
            self.release.wait(30)
            return "ok"

    backend = Hung()
    readiness = StorageReadiness(backend, deadline=0.2)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        assert await readiness.check() == "timed out"
        assert await readiness.check() == "timed out"
        assert time.monotonic() - started < 2
        assert backend.calls == 1
    finally:
        backend.release.set()
    # The hung check's own answer, or a new check's once it has ended: one per probe again.
    assert await readiness.check() == "ok"
    calls = backend.calls
    assert await readiness.check() == "ok" and backend.calls == calls + 1
