#!/usr/bin/env bash
# Make sure a local PostgreSQL with PostGIS answers for the test suite.
set -euo pipefail
url="${CHECKUP_TEST_PG:-postgresql://postgres@127.0.0.1:5432/postgres}"
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
  echo "==> installing PostgreSQL 15 + PostGIS"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-15 postgresql-15-postgis-3 >/dev/null
fi
if ! psql "$url" -Atc "SELECT 1" >/dev/null 2>&1; then
  ver=$(ls /etc/postgresql | head -n1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || pg_ctlcluster "$ver" main start || true
  for _ in $(seq 1 30); do psql "$url" -Atc "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
fi
if ! psql "$url" -Atc "SELECT 1" >/dev/null 2>&1; then
  # A fresh Debian cluster only trusts the postgres OS user: allow local trust for tests.
  ver=$(ls /etc/postgresql | head -n1)
  hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if [ -w "$hba" ]; then
    sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main reload 2>/dev/null || pg_ctlcluster "$ver" main reload
    sleep 1
  fi
fi
psql "$url" -Atc "SELECT 1" >/dev/null
echo "==> PostgreSQL ready at $url"
