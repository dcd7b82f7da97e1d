"""`sftp.kex_algorithms`, `mac_algorithms` and `signature_algorithms`: a server without SHA-1
refuses clients that offer nothing else, and lets modern ones, OpenSSH's included, in."""

from __future__ import annotations

import tomllib
from pathlib import Path

import asyncssh
import pytest
from pydantic import ValidationError

from sftphook.config import Settings
from sftphook.errors import InvalidConfiguration
from sftphook.sftp import algorithms
from tests.conftest import require_binary
from tests.sftp.conftest import Result, Server, run

# The example of docs/configuration.md.
NO_SHA1 = {
    "kex_algorithms": [
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
        "diffie-hellman-group-exchange-sha256",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512",
        "diffie-hellman-group14-sha256",
    ],
    "mac_algorithms": [
        "umac-64-etm@openssh.com",
        "umac-128-etm@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
        "umac-64@openssh.com",
        "umac-128@openssh.com",
        "hmac-sha2-256",
        "hmac-sha2-512",
    ],
    "signature_algorithms": [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "rsa-sha2-256",
        "rsa-sha2-512",
    ],
}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Without SHA-1, unless a test asks for `defaults` with
    `@pytest.mark.parametrize("settings", ["defaults"], indirect=True)`."""
    if getattr(request, "param", "no-sha1") == "no-sha1":
        for name, value in NO_SHA1.items():
            setattr(settings.sftp, name, value)
    return settings


def _rsa_user_key(tmp_path: Path) -> tuple[asyncssh.SSHKey, str]:
    key = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    return key, key.export_public_key().decode().strip()


async def test_a_client_offering_only_hmac_sha1_is_refused(server: Server) -> None:
    with pytest.raises(asyncssh.KeyExchangeFailed):
        await server.connect(encryption_algs=["aes128-ctr"], mac_algs=["hmac-sha1"])


async def test_a_client_offering_only_group14_sha1_is_refused(server: Server) -> None:
    with pytest.raises(asyncssh.KeyExchangeFailed):
        await server.connect(kex_algs=["diffie-hellman-group14-sha1"])


async def test_a_client_taking_only_ssh_rsa_host_keys_is_refused(server: Server) -> None:
    with pytest.raises(asyncssh.KeyExchangeFailed):
        await server.connect(server_host_key_algs=["ssh-rsa"])


async def test_a_client_signing_its_rsa_key_with_ssh_rsa_only_is_refused(
    server: Server, tmp_path: Path
) -> None:
    """As old JSch does: asyncssh falls back to `ssh-rsa` when the server announces no
    signature algorithm it allows, and the server must refuse that signature, not only leave
    it out of `server-sig-algs`."""
    key, public = _rsa_user_key(tmp_path)
    await server.app.accounts.update_user(server.org_id, server.username, public_keys=[public])
    with pytest.raises(asyncssh.PermissionDenied):
        await server.connect(password=None, client_keys=[key], signature_algs=["ssh-rsa"])
    # The same key signing with SHA-2 gets in.
    async with await server.connect(password=None, client_keys=[key]) as conn:
        assert conn.get_extra_info("username") == server.username


async def test_a_modern_client_gets_in(server: Server) -> None:
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        assert await sftp.listdir(".") is not None


async def test_a_modern_client_with_a_mac_gets_in(server: Server) -> None:
    async with await server.connect(encryption_algs=["aes128-ctr"]) as conn:
        assert conn.get_extra_info("send_mac") == "umac-64-etm@openssh.com"


async def test_openssh_connects_to_a_server_without_sha1_unless_it_insists_on_sha1(
    server: Server, tmp_path: Path
) -> None:
    sftp = require_binary("sftp")
    ssh = require_binary("ssh")
    batch = tmp_path / "batch"
    batch.write_text("pwd\n")

    async def sftp_with(*options: str) -> Result:
        return await run(
            [sftp, *server.ssh_options(), *options, "-P", str(server.port), "-b", str(batch),
             f"{server.username}@127.0.0.1"]
        )  # fmt: skip

    result = await sftp_with()
    assert result.returncode == 0, result.stderr
    # A cipher that needs a MAC (OpenSSH is offered AES-GCM only unless this is off).
    server.app.settings.sftp.openssh_gcm_only = False
    result = await sftp_with("-o", "Ciphers=aes128-ctr")
    assert result.returncode == 0, result.stderr
    # `ssh` says why (`sftp` only says "Connection closed"), at a log level above ERROR's.
    options = [o if o != "LogLevel=ERROR" else "LogLevel=INFO" for o in server.ssh_options()]
    for option, refusal in (
        ("KexAlgorithms=diffie-hellman-group14-sha1", "no matching key exchange method"),
        ("MACs=hmac-sha1", "no matching MAC"),
        ("HostKeyAlgorithms=ssh-rsa", "no matching host key type"),
    ):
        refused = await run(
            [ssh, *options, "-o", "Ciphers=aes128-ctr", "-o", option,
             "-p", str(server.port), f"{server.username}@127.0.0.1", "true"]
        )  # fmt: skip
        assert refused.returncode != 0
        assert refusal in refused.stderr, (option, refused.stderr)


@pytest.mark.parametrize("settings", ["defaults"], indirect=True)
async def test_by_default_sha1_algorithms_are_still_offered(server: Server) -> None:
    """For old clients (JSch 0.1.5x): the defaults are asyncssh's, as before the settings."""
    async with await server.connect(
        kex_algs=["diffie-hellman-group14-sha1"],
        encryption_algs=["aes128-ctr"],
        mac_algs=["hmac-sha1"],
        server_host_key_algs=["ssh-rsa"],
    ) as conn:
        assert conn.get_extra_info("send_mac") == "hmac-sha1"


@pytest.mark.parametrize(
    ("name", "value", "unknown"),
    [
        ("kex_algorithms", ["curve25519-sha256", "diffie-hellman-group99-sha1"], "key exchange"),
        ("mac_algorithms", ["hmac-sha3-256"], "MAC"),
        ("signature_algorithms", ["ssh-ed25519", "rsa-sha3-256"], "signature"),
        ("ciphers", ["aes128-gcm@openssh.com", "aes128-cbc-hmac"], "encryption"),
    ],
)
def test_an_unknown_algorithm_is_a_settings_error_naming_it_and_the_valid_ones(
    name: str, value: list[str], unknown: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.load(data_dir=tmp_path, sftp={name: value})
    message = str(caught.value)
    assert f"sftp.{name}" in message
    assert f"unknown {unknown} algorithm {value[-1]!r}" in message
    assert ", ".join(algorithms.supported(name)) in message
    if len(value) > 1:  # the known name is not called unknown
        assert repr(value[0]) not in message.split("supports")[0]


def test_the_no_sha1_example_of_the_docs_is_the_one_tested_here(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "docs" / "sftp.md").read_text()
    section = text.split("### Switching SHA-1 off", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    assert tomllib.loads(example) == {"sftp": NO_SHA1}
    Settings.load(data_dir=tmp_path, sftp=NO_SHA1)  # every name is one asyncssh has here


def test_an_empty_list_keeps_the_defaults(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path, sftp={"kex_algorithms": [], "mac_algorithms": []})
    assert settings.sftp.kex_algorithms == settings.sftp.mac_algorithms == []
    assert settings.sftp.signature_algorithms == []


def test_signature_algorithms_no_host_key_can_use_are_refused_at_start() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(InvalidConfiguration) as refused:
        algorithms.host_keys_signing_with([key], ["rsa-sha2-256"])
    assert refused.value.message == (
        "sftp.signature_algorithms: no host key can sign with any of ['rsa-sha2-256']: the "
        "host keys are ssh-ed25519, which sign with ssh-ed25519; add one of those to the list, "
        "or leave it empty"
    )
