#!/usr/bin/env bash
# Prepares this machine for `make test`: build packages, PostgreSQL and Redis
# running on loopback, and the Kafka-protocol broker (tansu) built once into
# the cargo home. Idempotent and quick when everything is already there.
set -euo pipefail

say() { printf '== %s\n' "$*"; }

# --- Debian packages: to build (librdkafka, OpenSSL, SQLite), and xmlsec1,
# the independent XML-signature implementation the SAML tests check with ---
need=()
for pkg in build-essential pkg-config libssl-dev zlib1g-dev xmlsec1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
fi

# --- PostgreSQL (127.0.0.1:5432, trust auth) --------------------------------
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

# --- Redis (127.0.0.1:6379) -------------------------------------------------
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }

# --- independent implementations the conformance tests compare against ------
if ! python3 -c "import codicefiscale" >/dev/null 2>&1; then
  say "installing python-codicefiscale (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check python-codicefiscale==0.12.1
fi
# The service provider the SAML tests log in with (it verifies with xmlsec1).
if ! python3 -c "import saml2" >/dev/null 2>&1; then
  say "installing pysaml2 (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check pysaml2==7.5.5
fi
# The mail server the notification tests deliver to.
if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
  say "installing aiosmtpd (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check aiosmtpd==1.4.6
fi

# --- the Kafka-protocol broker ----------------------------------------------
# tansu with its SQLite-compatible (libsql) storage, built once into the
# cargo home and reused: its cold build takes tens of minutes on 2 cores.
"$(dirname "$0")/install-tansu.sh"
say "test environment ready"
