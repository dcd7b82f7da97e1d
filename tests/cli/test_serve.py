import asyncio
import resource
import signal
import types

import httpx

from sftphook.app import App
from sftphook.cli.main import describe
from tests.cli.conftest import command


async def test_serve_prints_where_data_lives_and_its_address_then_stops_on_ctrl_c(
    cli_env, settings
):
    env = {**cli_env, "SFTPHOOK_HTTP__HOST": "127.0.0.1", "SFTPHOOK_HTTP__PORT": "0"}
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def low_soft_limit() -> None:
        # As service managers often start it: 256 open files, however many it may raise to.
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    proc = await asyncio.create_subprocess_exec(
        *command("serve", "--roles", "http"),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=low_soft_limit,
    )
    lines: list[str] = []
    try:
        while not any(line.lstrip().startswith("HTTP") for line in lines):
            raw = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert raw, "serve ended before printing its HTTP address"
            lines.append(raw.decode().rstrip())
        text = "\n".join(lines)
        assert f"data      {settings.data_dir.resolve()}" in text
        assert "sqlite+aiosqlite" in text
        url = next(line for line in lines if line.lstrip().startswith("HTTP")).split()[1]
        async with httpx.AsyncClient() as client:
            assert (await client.get(url + "healthz")).json() == {"status": "ok"}
        # It raised its soft limit of open files to the hard one.
        soft, _ = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)
        assert soft == (hard if hard != resource.RLIM_INFINITY else 1_048_576)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err


def test_description_names_the_sftp_address_and_host_keys(settings):
    server = App(
        settings.model_copy(update={"database_url": "postgresql+asyncpg://u:hunter2@db/x"})
    )
    server.sftp = types.SimpleNamespace(  # what the SFTP front exposes once it listens
        port=2222, host_key_fingerprints=[("ssh-ed25519", "SHA256:abc")]
    )
    text = "\n".join(describe(server))
    assert "SFTP      127.0.0.1:2222" in text and "sftp -P 2222 USER@127.0.0.1" in text
    assert "host key  ssh-ed25519 SHA256:abc" in text
    assert "hunter2" not in text and "HTTP" not in text
