"""Settings: one typed object, read once from the environment (SFTPHOOK_*) or a TOML file."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sftphook.sftp import algorithms

# asyncssh's chacha20-poly1305 builds cipher objects for every packet: AES-GCM moved 1.3-1.9x the
# bytes. The client's order decides, and OpenSSH clients put chacha20 first, so it is not offered
# by default (add it back here if a client needs it); aes-ctr stays for clients without GCM
# (paramiko, older JSch).
DEFAULT_CIPHERS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
]


def _networks(name: str, value: list[str]) -> list[str]:
    for net in value:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            raise ValueError(f"{name}: {net!r} is not a CIDR network") from exc
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Group(BaseModel):
    """A table of settings (`[sftp]`, `SFTPHOOK_SFTP__*`): a misspelt name in it is refused,
    as at the top level, rather than silently left at its default."""

    model_config = ConfigDict(extra="forbid")


class SFTPSettings(Group):
    host: str = "0.0.0.0"
    port: int = Field(default=2222, ge=0, le=65535)
    # Encryption algorithms in order of preference; empty means asyncssh's own default list.
    ciphers: list[str] = Field(default_factory=lambda: list(DEFAULT_CIPHERS))
    # Offer OpenSSH clients only the AES-GCM entries of `ciphers` (their own order would pick
    # aes-ctr); turn off for OpenSSH users who force another cipher with `-c`.
    openssh_gcm_only: bool = True
    # Key exchange, MAC and signature (host key and client key) algorithms, in order of
    # preference; empty means asyncssh's own default list, SHA-1 ones included for old clients.
    kex_algorithms: list[str] = Field(default_factory=list)
    mac_algorithms: list[str] = Field(default_factory=list)
    signature_algorithms: list[str] = Field(default_factory=list)
    # Client-side temporary upload names: renaming one of these into its final name is an upload.
    temp_suffixes: list[str] = Field(default_factory=lambda: [".filepart", ".part", ".tmp"])
    allow_scp: bool = True
    # The largest file a client may write, in bytes (0: no limit). A write or a resize past it
    # is refused; the bound also caps what a close re-reads to hash an upload with holes.
    max_file_size: int = Field(default=64 * 1024**3, ge=0)
    # Files and directories one SFTP session may hold open at once (each holds descriptors of
    # the process that every session shares); `limits@openssh.com` announces it.
    max_open_handles: int = Field(default=256, ge=1, le=65536)
    # Connections one node serves at once, in all and from one client address (0: no limit).
    # Past either, a new connection is told why and closed before its key exchange costs CPU.
    max_connections: int = Field(default=1000, ge=0)
    max_connections_per_address: int = Field(default=20, ge=0)
    # Of those, connections still logging in (0: no limit), as OpenSSH's MaxStartups: a flood
    # of connections that never log in cannot take every place while `login_timeout` runs.
    max_logging_in: int = Field(default=100, ge=0)
    # Sessions (each one SFTP or SCP channel) one connection may have open at once.
    max_sessions_per_connection: int = Field(default=10, ge=1, le=1000)
    login_timeout: float = Field(default=60.0, gt=0)
    # Seconds a logged-in connection may go without a byte of SFTP or SCP data either way
    # before it is closed (0: never); keepalives do not count.
    idle_timeout: float = Field(default=900.0, ge=0)
    keepalive_interval: float = Field(default=30.0, ge=0)
    # Brute-force protection: `ban_threshold` failed logins from one address within
    # `ban_window` seconds ban it for `ban_duration` seconds.
    ban_threshold: int = Field(default=10, ge=1)
    ban_window: float = Field(default=300.0, gt=0)
    ban_duration: float = Field(default=900.0, gt=0)
    # An IPv6 client is counted and banned (the per-address limit, failed logins, bans) as its
    # network of this many bits: one end site usually holds a whole /64.
    ipv6_prefix: int = 64
    # Behind a TCP load balancer: connections from `trusted_proxies` (CIDR networks) must start
    # with a PROXY protocol header (v1 or v2), whose client address is then the one events,
    # logs and bans see. Connections from other addresses are taken as direct.
    proxy_protocol: bool = False
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: list[str]) -> list[str]:
        return _networks("trusted_proxies", value)

    @field_validator("ciphers", "kex_algorithms", "mac_algorithms", "signature_algorithms")
    @classmethod
    def _algorithms_known(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return algorithms.check(str(info.field_name), value)

    @field_validator("ipv6_prefix")
    @classmethod
    def _prefix_in_range(cls, value: int) -> int:
        if not 1 <= value <= 128:
            raise ValueError(
                f"ipv6_prefix: {value} is not a prefix length from 1 to 128 (the bits of the "
                "IPv6 network counted as one client: 64 for a /64, 128 for single addresses)"
            )
        return value

    @model_validator(mode="after")
    def _proxies_needed(self) -> SFTPSettings:
        if self.proxy_protocol and not self.trusted_proxies:
            raise ValueError(
                "proxy_protocol needs trusted_proxies: the addresses of the load balancers "
                "(CIDR networks), so that no one else can claim another client address"
            )
        return self


class HTTPSettings(Group):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # The address users type to reach the dashboard; used in links printed at start.
    public_url: str | None = None
    # Reverse proxies (CIDR networks) whose X-Forwarded-For / X-Forwarded-Proto are believed:
    # the dashboard's login throttle and audit then see the browser's address, not the proxy's.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    # On a node without the `http` role: serve `/metrics`, `/healthz` and `/readyz` alone on
    # `host`:`port`, so that every node can be scraped and checked; off, such a node binds no
    # HTTP port (several processes on one host). A node with the role always serves them.
    ops_endpoints: bool = True

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: list[str]) -> list[str]:
        return _networks("trusted_proxies", value)


class WebhookSettings(Group):
    timeout: float = Field(default=10.0, gt=0, le=300)
    retry_schedule: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    retry_jitter: float = Field(default=0.1, ge=0, le=1)
    auto_pause_after: int = Field(default=5, ge=0)
    allow_http: bool = False
    allowed_networks: list[str] = Field(default_factory=list)
    ca_bundle: Path | None = None
    workers: int = Field(default=64, ge=1, le=4096)
    lease_seconds: float = Field(default=60.0, gt=0)
    max_response_body: int = Field(default=64 * 1024, ge=0)
    # Defaults for every webhook (each can override them): requests in flight at once to one
    # webhook, and requests started per second; None is no limit beyond `workers`.
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)
    rate_limit: float | None = Field(default=None, ge=0.1, le=10000)

    @field_validator("allowed_networks")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        return _networks("allowed_networks", value)

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_positive(cls, value: list[float]) -> list[float]:
        if any(v < 0 for v in value):
            raise ValueError("retry_schedule: every delay must be zero or more seconds")
        return value


class StorageSettings(Group):
    backend: Literal["local", "s3"] = "local"
    # Local backend: where organizations' files live; default `<data_dir>/files`.
    root: Path | None = None
    # S3 backend: objects of an organization live under `<prefix><organization id>/`.
    endpoint_url: str | None = None
    bucket: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    prefix: str = ""
    # A multipart upload with no new part for this long was left by a stopped process: the
    # next node to start aborts it.
    stale_upload_seconds: float = Field(default=900.0, ge=0)

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> StorageSettings:
        if self.backend == "s3" and not self.bucket:
            raise ValueError("storage.bucket is required when storage.backend is s3")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        return self


class SMTPSettings(Group):
    """The SMTP server that `email` notifications and owner notices go through."""

    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    # The From header, e.g. `sftphook <sftphook@example.com>`.
    from_: str = Field(default="sftphook <sftphook@localhost>", alias="from")
    timeout: float = Field(default=30.0, gt=0)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RetentionSettings(Group):
    deliveries_days: float = Field(default=30, gt=0)
    events_days: float = Field(default=90, gt=0)


class Settings(BaseSettings):
    """Every setting of sftphook. Build it once (`Settings.load`) and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="SFTPHOOK_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path("sftphook-data")
    database_url: str | None = None
    # Key for secrets at rest (base64 of 32 bytes); default: `<data_dir>/secret.key`, created 0600.
    encryption_key: SecretStr | None = None
    log_level: str = "INFO"
    sftp: SFTPSettings = Field(default_factory=SFTPSettings)
    http: HTTPSettings = Field(default_factory=HTTPSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    smtp: SMTPSettings = Field(default_factory=SMTPSettings)

    @field_validator("data_dir", mode="before")
    @classmethod
    def _named_dir(cls, value: Any) -> Any:
        # An empty SFTPHOOK_DATA_DIR (a variable set from an unset one) would be ".": the
        # database and the key would land wherever the command happened to run.
        if isinstance(value, str) and not value.strip():
            raise ValueError("data_dir is empty: name a directory, or leave it unset")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _TOML_FILE.get("path")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Read the environment and, when given, a TOML file (the environment wins)."""
        if config_file is not None:
            if not config_file.is_file():
                raise FileNotFoundError(f"configuration file {config_file} does not exist")
            with config_file.open("rb") as fh:
                tomllib.load(fh)  # a syntax error is reported here with its line number
        _TOML_FILE["path"] = config_file
        try:
            return cls(**overrides)
        finally:
            _TOML_FILE["path"] = None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'sftphook.db').resolve()}"

    @property
    def files_root(self) -> Path:
        return (self.storage.root or self.data_dir / "files").resolve()

    @property
    def host_keys_dir(self) -> Path:
        return (self.data_dir / "host_keys").resolve()

    @property
    def encryption_key_file(self) -> Path:
        return (self.data_dir / "secret.key").resolve()


_TOML_FILE: dict[str, Path | None] = {"path": None}
