#!/usr/bin/env bash
# The JSON API tested by a machine (R36): schemathesis (PyPI) generates requests from
# /api/openapi.json and runs them against a real `tokenwarden serve` (SQLite in a temporary
# folder, a port of the system's choosing) in front of the Snowflake emulator, once with the
# admin token and once with an app's API key. Checks: no 5xx (not_a_server_error), and every
# answer documented: its status, its content type and its body's schema.
#
# Short by default (scripts/test.sh runs it): SCHEMATHESIS_MAX_EXAMPLES (default 50) cases per
# operation and phase, then the stateful phase (sequences along the document's links: create,
# then get, change, test, delete what was created) with a budget of SCHEMATHESIS_STATEFUL_EXAMPLES
# (default 300; hypothesis ends it sooner, at 25-40 scenarios, a few seconds). The long run:
# `scripts/schemathesis.sh --long` (or SCHEMATHESIS_LONG=1): 300 cases per operation and a budget
# of 1000 stateful scenarios. It ends with the link coverage schemathesis reports.
#
# Closing line: `schemathesis: N passed, M failed` (operations x credentials, from the JUnit
# reports); exits non-zero if any failed. Reports: target/schemathesis/.
set -euo pipefail
start=$SECONDS
cd "$(dirname "$0")/.."

VERSION=4.32.5
venv=.venv-schemathesis
long="${SCHEMATHESIS_LONG:-0}"
[ "${1:-}" = "--long" ] && long=1
phases="examples,coverage,fuzzing"
if [ "$long" = 1 ]; then
  examples="${SCHEMATHESIS_MAX_EXAMPLES:-300}"
  stateful_examples="${SCHEMATHESIS_STATEFUL_EXAMPLES:-1000}"
else
  examples="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
  stateful_examples="${SCHEMATHESIS_STATEFUL_EXAMPLES:-300}"
fi

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $VERSION"; then
  python3 -m venv "$venv" 2>/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  }
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION"
fi

cargo build -p tokenwarden -p snowflake-emulator --locked
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
out="${CARGO_TARGET_DIR:-$PWD/target}/schemathesis"
rm -rf "$out" && mkdir -p "$out"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Waits until FILE has a line matching REGEX and prints the first match's URL.
url_from() {
  local file="$1" regex="$2" i
  for i in $(seq 1 600); do
    if grep -Eo "$regex" "$file" >/dev/null 2>&1; then
      grep -Eo "$regex" "$file" | head -n 1 | grep -Eo 'http://127\.0\.0\.1:[0-9]+'
      return 0
    fi
    sleep 0.1
  done
  echo "never started: $file" >&2
  cat "$file" >&2
  return 1
}

"$bin/snowflake-emulator" --listen 127.0.0.1:0 >"$work/emulator.log" 2>&1 &
pids+=($!)
emu="$(url_from "$work/emulator.log" 'listening on http://127\.0\.0\.1:[0-9]+')"

admin="schemathesis-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
public_url="https://tokenwarden.example.test"
(
  cd "$work"
  NO_COLOR=1 TOKENWARDEN_ADMIN_TOKEN="$admin" TOKENWARDEN_PUBLIC_URL="$public_url" \
    exec "$bin/tokenwarden" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.log"
) &
pids+=($!)
base="$(url_from "$work/serve.log" 'tokenwarden is listening address=http://127\.0\.0\.1:[0-9]+')"
app_key="$("$venv/bin/python" scripts/schemathesis_setup.py "$base" "$public_url" "$emu" "$admin" "$work/schemathesis.toml")"

checks="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
rc=0
# Each credential: the per-operation phases, then the stateful phase on its own budget.
for run in "app $phases $examples" "admin $phases $examples" \
  "app stateful $stateful_examples" "admin stateful $stateful_examples"; do
  read -r who run_phases run_examples <<<"$run"
  if [ "$who" = admin ]; then key="$admin"; else key="$app_key"; fi
  echo "== schemathesis with the $who credential ($run_examples examples, phases $run_phases)"
  "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/api/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks "$checks" \
    --phases "$run_phases" \
    --max-examples "$run_examples" \
    --seed 9 \
    --workers 2 \
    --suppress-health-check all \
    --request-timeout 60 \
    --report junit --report-junit-path "$out/$who-${run_phases%%,*}.xml" \
    --generation-database none \
    --no-color 2>&1 | tee "$out/$who-${run_phases%%,*}.log" || rc=$?
done

# One test case per operation and credential: failed if any check failed or it errored.
"$venv/bin/python" - "$out"/*.xml <<'EOF'
import sys
import xml.etree.ElementTree as ET

passed = failed = 0
for path in sys.argv[1:]:
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is None:
            passed += 1
print(f"schemathesis: {passed} passed, {failed} failed")
EOF
# How many of the document's links the stateful phase walked, as schemathesis counts them
# (`covered / selected / total (inferred)`; inferred links are its own guesses from the schema).
for who in app admin; do
  links="$(grep -Eo 'API Links: +[0-9]+ covered / [0-9]+ selected / [0-9]+ total( \([0-9]+ inferred\))?' \
    "$out/$who-stateful.log" | sed -E 's/API Links: +//' | tail -n 1 || true)"
  echo "schemathesis links ($who credential, stateful): ${links:-not reported}"
done
echo "schemathesis: $((SECONDS - start)) s in all"
if [ "$rc" -ne 0 ]; then
  echo "schemathesis found problems (exit $rc); server log: see above, reports in $out" >&2
  tail -n 50 "$work/serve.log" >&2
fi
exit "$rc"
