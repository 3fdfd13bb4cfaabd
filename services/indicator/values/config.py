"""Thresholds and limits of the values domain (env prefix CHECKUP_VALUES_)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ValuesSettings", "values_settings"]


class ValuesSettings(BaseSettings):
    """Checks and limits of value entry and bulk import."""

    model_config = SettingsConfigDict(env_prefix="CHECKUP_VALUES_", extra="ignore")

    # Two sources disagree when |a − b| / max(|a|, |b|) exceeds this.
    source_tolerance: float = 0.10
    # Robust z = 0.6745·(x − median)/MAD over earlier periods; flagged when |z| exceeds this.
    outlier_z: float = 3.5
    outlier_min_history: int = 3
    # Bulk bodies above this are refused with 413 before they are parsed.
    max_import_bytes: int = 64 * 1024 * 1024
    # Errors returned (and kept on the batch); the full count is always kept.
    max_errors_returned: int = 1000
    max_note_chars: int = 2000


@lru_cache
def values_settings() -> ValuesSettings:
    """The process-wide values settings."""
    return ValuesSettings()
