#!/usr/bin/env bash
# Prepare a fresh Debian machine: system packages (SpatiaLite, PostGIS where a local
# PostgreSQL 15 runs), a virtualenv in .venv, and the project with its dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

need_pkgs=()
# SpatiaLite for the embedded default; pango/harfbuzz + a CJK font for PDF reports;
# poppler-utils to check rendered pages in tests; wrk for the intake benchmark.
for pkg in libsqlite3-mod-spatialite libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
  fonts-wqy-microhei poppler-utils wrk; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ -d /usr/lib/postgresql/15 ] && ! dpkg -s postgresql-15-postgis-3 >/dev/null 2>&1; then
  need_pkgs+=(postgresql-15-postgis-3)
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "==> installing system packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing the project into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
