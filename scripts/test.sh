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

# The real OAuth 2.0 server the OAuth tests run against: npm's oidc-provider on Node.
command -v node >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
(cd tests/oidc-provider && npm ci --no-audit --no-fund --loglevel=error)

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The binary without its default `demo` feature (no `demo` command, no emulator, no /_demo routes)
# must still build.
cargo check -p tokenwarden --no-default-features --locked
# --all-targets: unit, integration and binary tests (no doctests: there are none, and their
# empty "0 passed" summary would be the last line). The closing line totals every binary.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-targets --locked 2>&1 | tee "$log"

# The operator's guide, proven (docs/operations.md, issue 13): the drill's short version runs
# every command the guide shows but the export / import move (a CLI test covers that), on the
# debug binary the tests built, in under a minute.
command -v jq >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
drill_rc=0
scripts/ops-drill.sh --short || drill_rc=$?
[ "$drill_rc" -eq 0 ] || echo "scripts/ops-drill.sh --short failed (exit $drill_rc)"

# Browser tests of the admin UI (tests/browser): playwright-core drives Debian's chromium against
# `tokenwarden demo` (no browser download: the Debian package is the browser).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium for the browser tests" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
cargo build -p tokenwarden --locked
browser_log="$(mktemp)"
trap 'rm -f "$log" "$browser_log"' EXIT
browser_rc=0
TOKENWARDEN_BIN="$PWD/target/debug/tokenwarden" \
  node --test --test-reporter=tap --test-concurrency=1 tests/browser/*.test.mjs 2>&1 | tee "$browser_log" \
  || browser_rc=$?
echo "browser test screenshots: $PWD/tests/browser/screenshots"
[ "$browser_rc" -eq 0 ] || echo "browser tests failed (node --test exit $browser_rc)"

# The JSON API tested by a machine (R36): schemathesis against a running `tokenwarden serve`,
# short budget (scripts/schemathesis.sh --long for the long run). Its `schemathesis: N passed,
# M failed` line counts in the closing line; the script fails if it found anything.
schema_log="$(mktemp)"
trap 'rm -f "$log" "$browser_log" "$schema_log"' EXIT
schema_rc=0
scripts/schemathesis.sh 2>&1 | tee "$schema_log" || schema_rc=$?
[ "$schema_rc" -eq 0 ] || echo "schemathesis failed (exit $schema_rc)"

# The read benchmark's smoke mode (bench/run --smoke, issue 10): every server it compares starts
# and answers; a second of load each, on the debug build; it never fails on timing.
bench_rc=0
bench/run --smoke || bench_rc=$?
[ "$bench_rc" -eq 0 ] || echo "bench/run --smoke failed (exit $bench_rc)"

# The closing line totals every cargo test binary, the browser tests (node's `# pass N`,
# `# fail N`; a cancelled test counts as failed) and schemathesis. The script fails if a
# browser test or schemathesis failed.
awk -v cargo="$log" -v browser="$browser_log" -v schema="$schema_log" '
     FILENAME == cargo && /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     FILENAME == browser && /^# pass [0-9]+$/ { p += $3 }
     FILENAME == browser && /^# (fail|cancelled) [0-9]+$/ { f += $3 }
     FILENAME == schema && /^schemathesis: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log" "$browser_log" "$schema_log"
[ "$browser_rc" -eq 0 ] || exit "$browser_rc"
[ "$bench_rc" -eq 0 ] || exit "$bench_rc"
[ "$drill_rc" -eq 0 ] || exit "$drill_rc"
exit "$schema_rc"
