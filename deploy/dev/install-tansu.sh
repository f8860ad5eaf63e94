#!/usr/bin/env bash
# Builds the tansu broker once into "$CARGO_HOME/tansu" (reused afterwards)
# and prints where it is. Version and features are pinned here.
set -euo pipefail
TANSU_VERSION=0.6.0
TANSU_FEATURES=libsql
root="${CARGO_HOME:-$HOME/.cargo}/tansu-${TANSU_VERSION}-${TANSU_FEATURES}"
bin="$root/bin/tansu"
if [ ! -x "$bin" ]; then
  echo "== building tansu $TANSU_VERSION ($TANSU_FEATURES storage) into $root — once; this takes a while" >&2
  start=$(date +%s)
  cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features \
    --features "$TANSU_FEATURES" --root "$root" --quiet
  echo "== tansu built in $(( $(date +%s) - start )) s" >&2
fi
echo "$bin"
