"""lftp, curl, rclone and paramiko: the operations their users run, and the events they leave."""

from __future__ import annotations

import asyncio
import hashlib
import shlex
from pathlib import Path

import paramiko

from tests.conftest import require_binary
from tests.sftp.conftest import Server, run, topics

EXPECTED = [
    ("file.created", "box/"),
    ("file.created", "box/data.bin"),
    ("file.downloaded", "box/data.bin"),
    ("file.renamed", "box/moved.bin"),
    ("file.deleted", "box/moved.bin"),
    ("file.deleted", "box/"),
]


def payload(size: int) -> bytes:
    return hashlib.sha256(b"seed").digest() * (size // 32) + b"x" * (size % 32)


async def test_lftp(server: Server, tmp_path: Path) -> None:
    lftp = require_binary("lftp")
    local = tmp_path / "data.bin"
    local.write_bytes(payload(100_000))
    ssh = "ssh -a -x " + " ".join(shlex.quote(o) for o in server.ssh_options())
    script = (
        f"set sftp:connect-program {shlex.quote(ssh)}; set net:max-retries 1; "
        f"set xfer:clobber on; "
        f"open -u {server.username}, -p {server.port} sftp://127.0.0.1; "
        f"mkdir box; put {local} -o box/data.bin; cls -l box; "
        f"get box/data.bin -o {tmp_path / 'back.bin'}; mv box/data.bin box/moved.bin; "
        "rm box/moved.bin; rmdir box; bye"
    )
    result = await run([lftp, "-c", script])
    assert result.returncode == 0, result.stderr
    assert "data.bin" in result.stdout
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    events = await server.events()
    assert topics(events) == EXPECTED
    assert events[1].sha256 == hashlib.sha256(local.read_bytes()).hexdigest()


async def test_curl(server: Server, tmp_path: Path) -> None:
    curl = require_binary("curl")
    local = tmp_path / "data.bin"
    local.write_bytes(payload(70_000))
    base = [
        curl,
        "--silent",
        "--show-error",
        "--insecure",
        "-u",
        f"{server.username}:{server.password}",
    ]
    url = f"sftp://127.0.0.1:{server.port}"
    steps = [
        [*base, "-Q", "mkdir /box", f"{url}/"],
        [*base, "-T", str(local), f"{url}/box/data.bin"],
        [*base, f"{url}/box/"],
        [*base, "-o", str(tmp_path / "back.bin"), f"{url}/box/data.bin"],
        [*base, "-Q", "rename /box/data.bin /box/moved.bin", "-Q", "rm /box/moved.bin",
         "-Q", "rmdir /box", f"{url}/"],
    ]  # fmt: skip
    outputs = []
    for argv in steps:
        result = await run(argv)
        assert result.returncode == 0, (argv, result.stderr)
        outputs.append(result.stdout)
    assert "data.bin" in outputs[2]
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    assert topics(await server.events()) == EXPECTED


async def test_rclone_large_file(server: Server, tmp_path: Path) -> None:
    rclone = require_binary("rclone")
    local_dir = tmp_path / "up"
    local_dir.mkdir()
    local = local_dir / "data.bin"
    local.write_bytes(payload(300_000))  # over 32 KiB: rclone 1.60 adds bytes after the data
    env = {
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
        "RCLONE_CONFIG_T_TYPE": "sftp",
        "RCLONE_CONFIG_T_HOST": "127.0.0.1",
        "RCLONE_CONFIG_T_PORT": str(server.port),
        "RCLONE_CONFIG_T_USER": server.username,
        "RCLONE_CONFIG_T_KEY_FILE": str(server.key_file),
        "RCLONE_CONFIG_T_SHELL_TYPE": "none",
        "RCLONE_CONFIG_T_SET_MODTIME": "false",
    }
    base = [rclone, "--retries", "1", "--low-level-retries", "1"]
    for argv in (
        [*base, "mkdir", "t:box"],
        [*base, "copyto", str(local), "t:box/data.bin"],
        [*base, "lsl", "t:box"],
        [*base, "copyto", "t:box/data.bin", str(tmp_path / "back.bin")],
        [*base, "moveto", "t:box/data.bin", "t:box/moved.bin"],
        [*base, "deletefile", "t:box/moved.bin"],
        [*base, "rmdir", "t:box"],
    ):
        result = await run(argv, env=env)
        assert result.returncode == 0, (argv, result.stderr)
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    events = await server.events()
    assert topics(events) == EXPECTED
    assert events[1].sha256 == hashlib.sha256(local.read_bytes()).hexdigest()


def _paramiko_session(server: Server, tmp_path: Path) -> None:
    transport = paramiko.Transport(("127.0.0.1", server.port))
    try:
        transport.connect(username=server.username, password=server.password)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        local = tmp_path / "data.bin"
        local.write_bytes(payload(90_000))
        sftp.mkdir("box")
        sftp.put(str(local), "box/data.bin")
        assert sftp.listdir("box") == ["data.bin"]
        sftp.get("box/data.bin", str(tmp_path / "back.bin"))
        sftp.rename("box/data.bin", "box/moved.bin")
        sftp.remove("box/moved.bin")
        sftp.rmdir("box")
        sftp.close()
    finally:
        transport.close()


async def test_paramiko(server: Server, tmp_path: Path) -> None:
    # paramiko has no AES-GCM: this also proves the aes-ctr fallback in the cipher list.
    await asyncio.to_thread(_paramiko_session, server, tmp_path)
    assert (tmp_path / "back.bin").read_bytes() == (tmp_path / "data.bin").read_bytes()
    assert topics(await server.events()) == EXPECTED


async def test_paramiko_key_auth(server: Server) -> None:
    def go() -> list[str]:
        key = paramiko.Ed25519Key.from_private_key_file(str(server.key_file))
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(
            "127.0.0.1", server.port, username=server.username, pkey=key,
            allow_agent=False, look_for_keys=False,
        )  # fmt: skip
        try:
            return client.open_sftp().listdir(".")
        finally:
            client.close()

    assert await asyncio.to_thread(go) == []
