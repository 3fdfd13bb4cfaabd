"""Node and service settings (pydantic-settings, one env prefix per service)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.regions import is_valid_code, tier_of

__all__ = ["DEV_SECRET", "SERVICES", "NodeSettings", "ServiceName"]

ServiceName = Literal["indicator", "survey", "report", "gateway"]
SERVICES: tuple[ServiceName, ...] = ("indicator", "survey", "report", "gateway")
DEV_SECRET = "dev-only-internal-secret-change-me"


class NodeSettings(BaseSettings):
    """One node: its region, where its data lives, and the secrets its services share."""

    model_config = SettingsConfigDict(env_prefix="CHECKUP_", env_file=".env", extra="ignore")

    environment: Literal["dev", "test", "production"] = "dev"
    node_id: str = ""
    region_code: str = "360121"
    data_dir: Path = Path("var/node")
    # PostgreSQL URL for every service of the node (one schema each); SQLite files when unset.
    database_url: str | None = None
    schema_prefix: str = ""
    internal_secret: SecretStr = SecretStr(DEV_SECRET)
    jwt_secret: SecretStr = SecretStr(DEV_SECRET)
    # Per-service overrides, e.g. CHECKUP_INDICATOR_URL=http://127.0.0.1:8101 in split mode.
    indicator_url: str | None = None
    survey_url: str | None = None
    report_url: str | None = None
    upstream_timeout_s: float = 30.0

    # Gateway controls (GB/T 22239-2019 level 3).
    password_min_length: int = 10
    lockout_threshold: int = 5
    lockout_minutes: int = 30
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    rate_limit_per_minute: int = 600
    rate_limit_burst: int = 200
    max_body_bytes: int = 64 * 1024 * 1024
    public_url: str = "http://127.0.0.1:8000"
    # Gateway: how stale a cached session / API key may be before the database is asked
    # again (bounds how long a lockout or revocation made by another replica goes unseen),
    # how often a session's last-seen time is written back, service discovery patience,
    # and idle upstream keep-alive connections kept per service.
    session_revalidate_s: float = 5.0
    session_touch_s: float = 30.0
    discovery_timeout_s: float = 30.0
    upstream_pool_size: int = 64

    @field_validator("region_code")
    @classmethod
    def _region(cls, v: str) -> str:
        if not is_valid_code(v) or len(v) != 6:
            raise ValueError("region_code must be a 6-digit province, city or county code")
        tier_of(v)
        return v

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, v: str | None) -> str | None:
        if not v:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if v.startswith(prefix):
                return "postgresql+psycopg://" + v[len(prefix) :]
        return v

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> NodeSettings:
        if self.environment == "production":
            for name in ("internal_secret", "jwt_secret"):
                secret: SecretStr = getattr(self, name)
                if secret.get_secret_value() == DEV_SECRET or len(secret.get_secret_value()) < 32:
                    raise ValueError(f"{name} must be set to a strong secret in production")
        if not self.node_id:
            self.node_id = f"node-{self.region_code}"
        return self

    @property
    def tier(self) -> str:
        return tier_of(self.region_code)

    def service_url(self, service: ServiceName) -> str | None:
        """Base URL of a service in split mode; None means in-process (all-in-one)."""
        return getattr(self, f"{service}_url", None)

    def database_for(self, service: ServiceName) -> tuple[str, str | None]:
        """(SQLAlchemy URL, schema) of one service's storage."""
        if self.database_url:
            return self.database_url, f"{self.schema_prefix}{service}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}", None

    # --- federation between tiers (docs/federation.md) ---------------------------------------
    # Base URL of the parent node's gateway; None on the top node (no parent).
    parent_url: str | None = None
    # Credential secret the parent issued to this node; read from <data_dir>/node-credential
    # when unset, so that `checkup nodes join` can store it without editing the environment.
    node_credential: SecretStr | None = None
    sync_poll_interval_s: float = 0.5
    # Changes per batch pushed or pulled; a receiver takes at most 10,000 (MAX_BATCH_CHANGES).
    sync_batch_size: int = Field(default=10_000, ge=1, le=10_000)
    # Batches of a stream in flight at once (the next is sent while the parent applies one).
    sync_push_window: int = Field(default=2, ge=1)
    sync_dead_letter_after: int = 5
    sync_backoff_cap_s: float = 300.0
    # Credential rotation at the parent: how long the replaced secret stays valid.
    credential_grace_hours: float = 24.0

    @property
    def credential_file(self) -> Path:
        """Where `checkup nodes join` stores the credential it picked up."""
        return self.data_dir / "node-credential"

    def credential_secret(self) -> str | None:
        """This node's credential secret: the setting, else the file, else None."""
        if self.node_credential is not None:
            return self.node_credential.get_secret_value()
        if self.credential_file.is_file():
            text = self.credential_file.read_text(encoding="utf-8").strip()
            return text or None
        return None

    def store_credential(self, secret: str) -> None:
        """Keep the credential issued by the parent in the data directory (mode 0600)."""
        path = self.credential_file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secret + "\n")
