#!/usr/bin/env bash
# The demo of the whole flow on the embedded default (SQLite files under var/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/checkup demo "$@"
