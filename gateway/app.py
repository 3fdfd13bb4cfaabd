"""The gateway app (identity, routing to services, limits, audit)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
