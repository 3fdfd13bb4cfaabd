#!/usr/bin/env bash
# The whole test suite on SQLite (+SpatiaLite) and PostgreSQL (+PostGIS).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ensure-postgres.sh
exec .venv/bin/python -m pytest "$@"
