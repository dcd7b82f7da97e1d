"""OpenSSH's `sftp` and `scp` (SFTP mode and legacy `-O`) against the server, with events."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.conftest import require_binary
from tests.sftp.conftest import Server, run, topics


async def test_openssh_sftp_batch(server: Server, tmp_path: Path) -> None:
    sftp = require_binary("sftp")
    local = tmp_path / "report.csv"
    local.write_bytes(b"a,b\n1,2\n" * 5000)
    back = tmp_path / "back.csv"
    batch = tmp_path / "batch"
    batch.write_text(
        f"mkdir inbound\nput {local} inbound/report.csv\nls -l inbound\n"
        f"get inbound/report.csv {back}\nrename inbound/report.csv inbound/done.csv\n"
        "ln -s done.csv inbound/link\nrm inbound/link\n"
        "rm inbound/done.csv\nrmdir inbound\ndf\n"
    )
    result = await run(
        [sftp, *server.ssh_options(), "-P", str(server.port), "-b", str(batch),
         f"{server.username}@127.0.0.1"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "report.csv" in result.stdout
    assert back.read_bytes() == local.read_bytes()
    events = await server.events()
    assert topics(events) == [
        ("file.created", "inbound/"),
        ("file.created", "inbound/report.csv"),
        ("file.downloaded", "inbound/report.csv"),
        ("file.renamed", "inbound/done.csv"),
        ("file.created", "inbound/link"),
        ("file.deleted", "inbound/link"),
        ("file.deleted", "inbound/done.csv"),
        ("file.deleted", "inbound/"),
    ]
    assert events[1].sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
    # `ln -s`: the link's event carries what it leads to.
    assert (events[4].size, events[4].sha256) == (events[1].size, events[1].sha256)


async def test_scp_sftp_mode_exits_zero(server: Server, tmp_path: Path) -> None:
    scp = require_binary("scp")
    local = tmp_path / "photo.bin"
    local.write_bytes(bytes(range(256)) * 400)
    base = [scp, *server.ssh_options(), "-P", str(server.port)]
    up = await run([*base, str(local), f"{server.username}@127.0.0.1:/photo.bin"])
    assert up.returncode == 0, up.stderr
    down = await run([*base, f"{server.username}@127.0.0.1:/photo.bin", str(tmp_path / "b")])
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "b").read_bytes() == local.read_bytes()
    assert topics(await server.events()) == [
        ("file.created", "photo.bin"),
        ("file.downloaded", "photo.bin"),
    ]


async def test_legacy_scp_protocol(server: Server, tmp_path: Path) -> None:
    scp = require_binary("scp")
    local = tmp_path / "legacy.txt"
    local.write_bytes(b"legacy scp\n" * 3000)
    base = [scp, "-O", *server.ssh_options(), "-P", str(server.port)]
    up = await run([*base, str(local), f"{server.username}@127.0.0.1:/legacy.txt"])
    assert up.returncode == 0, up.stderr
    down = await run([*base, f"{server.username}@127.0.0.1:/legacy.txt", str(tmp_path / "b")])
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "b").read_bytes() == local.read_bytes()
    events = await server.events()
    assert topics(events) == [("file.created", "legacy.txt"), ("file.downloaded", "legacy.txt")]
    assert {e.protocol for e in events} == {"SCP"}
    assert events[0].sha256 == hashlib.sha256(local.read_bytes()).hexdigest()


async def test_legacy_scp_errors_show_no_host_paths(server: Server, tmp_path: Path) -> None:
    scp = require_binary("scp")
    base = [scp, "-O", *server.ssh_options(), "-P", str(server.port)]
    local = tmp_path / "x"
    local.write_text("x")
    result = await run([*base, str(local), f"{server.username}@127.0.0.1:/missing/x"])
    assert result.returncode != 0
    assert "/missing/x" in result.stderr
    down = await run([*base, f"{server.username}@127.0.0.1:/missing/x", str(tmp_path / "y")])
    assert down.returncode != 0
    for message in (result.stderr, down.stderr):
        assert str(server.app.settings.data_dir) not in message
        assert str(server.root) not in message


async def test_legacy_scp_recursive(server: Server, tmp_path: Path) -> None:
    scp = require_binary("scp")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("b")
    base = [scp, "-O", "-r", *server.ssh_options(), "-P", str(server.port)]
    up = await run([*base, str(tree), f"{server.username}@127.0.0.1:/"])
    assert up.returncode == 0, up.stderr
    down = await run([*base, f"{server.username}@127.0.0.1:/tree", str(tmp_path / "back")])
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "back" / "sub" / "b.txt").read_text() == "b"
    created = {e.path for e in await server.events() if e.topic == "file.created"}
    assert created == {"tree/", "tree/a.txt", "tree/sub/", "tree/sub/b.txt"}


async def test_openssh_clients_get_aes_gcm(server: Server, tmp_path: Path) -> None:
    sftp = require_binary("sftp")
    batch = tmp_path / "batch"
    batch.write_text("pwd\n")
    options = server.ssh_options()
    options[options.index("LogLevel=ERROR")] = "LogLevel=DEBUG1"
    result = await run(
        [sftp, "-v", *options, "-P", str(server.port), "-b", str(batch),
         f"{server.username}@127.0.0.1"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "server->client cipher: aes128-gcm@openssh.com" in result.stderr


async def test_put_preserving_mode_and_times(server: Server, tmp_path: Path) -> None:
    sftp = require_binary("sftp")
    local = tmp_path / "kept.sh"
    local.write_text("#!/bin/sh\n")
    local.chmod(0o750)
    os.utime(local, (1_600_000_000, 1_600_000_000))
    batch = tmp_path / "batch"
    batch.write_text(f"put -p {local} kept.sh\n")
    result = await run(
        [sftp, *server.ssh_options(), "-P", str(server.port), "-b", str(batch),
         f"{server.username}@127.0.0.1"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stored = (server.root / "kept.sh").stat()
    assert stored.st_mode & 0o777 == 0o750
    assert int(stored.st_mtime) == 1_600_000_000
    assert topics(await server.events()) == [("file.created", "kept.sh")]


async def test_put_without_p_gives_the_file_its_local_mode(server: Server, tmp_path: Path) -> None:
    # Without -p, OpenSSH's sftp sends the local file's mode with the open (OpenSSH's server
    # creates the file with it) and sets nothing after the upload.
    sftp = require_binary("sftp")
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    large = tmp_path / "large.bin"
    large.write_bytes(os.urandom(3 * 1024 * 1024))  # streamed and committed off the loop
    large.chmod(0o750)
    private = tmp_path / "private.txt"
    private.write_text("private\n")
    private.chmod(0o600)
    batch = tmp_path / "batch"
    batch.write_text(
        f"put {script} run.sh\nput {large} large.bin\nput {private} private.txt\n"
        f"put {script} private.txt\n"
    )
    result = await run(
        [sftp, *server.ssh_options(), "-P", str(server.port), "-b", str(batch),
         f"{server.username}@127.0.0.1"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    modes = {name: (server.root / name).stat().st_mode & 0o7777 for name in ("run.sh", "large.bin")}
    assert modes == {"run.sh": 0o755, "large.bin": 0o750}
    # An upload over a file keeps that file's mode, as OpenSSH's server (which rewrites it).
    assert (server.root / "private.txt").stat().st_mode & 0o7777 == 0o600
    assert (server.root / "private.txt").read_text() == "#!/bin/sh\n"
    assert len(await server.events()) == 4


async def test_openssh_forcing_aes_ctr_works_when_gcm_only_is_off(
    server: Server, tmp_path: Path
) -> None:
    sftp = require_binary("sftp")
    batch = tmp_path / "batch"
    batch.write_text("pwd\n")
    argv = [sftp, "-c", "aes256-ctr", *server.ssh_options(), "-P", str(server.port),
            "-b", str(batch), f"{server.username}@127.0.0.1"]  # fmt: skip
    assert (await run(argv)).returncode != 0
    server.app.settings.sftp.openssh_gcm_only = False
    result = await run(argv)
    assert result.returncode == 0, result.stderr
