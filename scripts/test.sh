#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this). Installs what the tests
# need that a fresh machine may lack, then: format check, clippy, every test of every crate.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL server binaries: the storage conformance suite and the PostgreSQL API/CLI tests
# start a throwaway cluster with initdb + pg_ctl (or use TOKENWARDEN_TEST_POSTGRES_URL).
if [ -z "${TOKENWARDEN_TEST_POSTGRES_URL:-}" ] \
  && ! command -v initdb >/dev/null 2>&1 \
  && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing PostgreSQL server binaries for the tests" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
command -v psql >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null
}

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
