#!/usr/bin/env bash
# The JSON API tested by a machine (R36): schemathesis (PyPI) generates requests from
# /api/openapi.json and runs them against a real `tokenwarden serve` (SQLite in a temporary
# folder, a port of the system's choosing) in front of the Snowflake emulator, once with the
# admin token and once with an app's API key. Checks: no 5xx (not_a_server_error), and every
# answer documented: its status, its content type and its body's schema.
#
# Short by default (scripts/test.sh runs it): SCHEMATHESIS_MAX_EXAMPLES (default 50) cases per
# operation and phase; then, on a fresh instance, the stateful phase (sequences along the
# document's links: create, then get, change, test, delete what was created) for
# SCHEMATHESIS_STATEFUL_TIME seconds with the admin token (default 40; schemathesis repeats its
# passes, new seeds each, until the time is spent) and SCHEMATHESIS_STATEFUL_APP_TIME (10) with
# the app key, SCHEMATHESIS_STATEFUL_STEPS (10) steps per scenario. The long run:
# `scripts/schemathesis.sh --long` (or SCHEMATHESIS_LONG=1): 300 cases per operation and 300 s
# of stateful testing. scripts/schemathesis_hooks.py reports the links walked one by one (and
# gives a repeated generated name a suffix in the stateful phase, see there).
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
  stateful_time="${SCHEMATHESIS_STATEFUL_TIME:-300}"
else
  examples="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
  stateful_time="${SCHEMATHESIS_STATEFUL_TIME:-40}"
fi
# Scenarios per pass (hypothesis' max_examples; it often ends a pass sooner by itself), steps
# per scenario, and the app key's budget (it may create nothing, so no link can start).
stateful_examples="${SCHEMATHESIS_STATEFUL_EXAMPLES:-300}"
stateful_steps="${SCHEMATHESIS_STATEFUL_STEPS:-10}"
stateful_app_time="${SCHEMATHESIS_STATEFUL_APP_TIME:-10}"

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

# A fresh instance (its own SQLite folder) with the setup's data: sets `base`, `app_key` and
# `config` (the schemathesis config the setup wrote, plus the stateful settings).
start_instance() {
  local name="$1"
  mkdir -p "$work/$name"
  (
    cd "$work/$name"
    NO_COLOR=1 TOKENWARDEN_ADMIN_TOKEN="$admin" TOKENWARDEN_PUBLIC_URL="$public_url" \
      exec "$bin/tokenwarden" serve --listen 127.0.0.1:0 >"$work/$name/serve.out" 2>"$work/$name/serve.log"
  ) &
  pids+=($!)
  serve_log="$work/$name/serve.log"
  base="$(url_from "$serve_log" 'tokenwarden is listening address=http://127\.0\.0\.1:[0-9]+')"
  config="$work/$name/schemathesis.toml"
  app_key="$("$venv/bin/python" scripts/schemathesis_setup.py "$base" "$public_url" "$emu" "$admin" "$config")"
  printf '[phases.stateful]\nmax-steps = %s\n\n' "$stateful_steps" >>"$config"
}

checks="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
rc=0
# The links walked in the stateful phase, link by link (scripts/schemathesis_hooks.py).
export SCHEMATHESIS_HOOKS="$PWD/scripts/schemathesis_hooks.py"
# Each credential: the per-operation phases on one instance; then, on a fresh one (whose rows
# do not already hold the names the stateful phase generates), the stateful phase on a time
# budget (schemathesis repeats its scenarios with new seeds until the budget is spent).
for run in "app $phases $examples" "admin $phases $examples" \
  "app stateful $stateful_app_time" "admin stateful $stateful_time"; do
  read -r who run_phases budget <<<"$run"
  # SCHEMATHESIS_ONLY_STATEFUL=1: the stateful phase alone (to look at the links).
  [ "${SCHEMATHESIS_ONLY_STATEFUL:-0}" = 1 ] && [ "$run_phases" != stateful ] && continue
  if [ "$run_phases" = stateful ]; then
    [ "$who" = app ] && start_instance stateful
    limits=(--max-time "$budget" --max-examples "$stateful_examples")
    what="stateful, ${budget} s"
  else
    [ "$who" = app ] && start_instance unit
    limits=(--max-examples "$budget")
    what="$budget examples, phases $run_phases"
  fi
  if [ "$who" = admin ]; then key="$admin"; else key="$app_key"; fi
  echo "== schemathesis with the $who credential ($what)"
  SCHEMATHESIS_LINKS_REPORT="$out/$who-${run_phases%%,*}-links.json" \
    "$venv/bin/schemathesis" --config-file "$config" run "$base/api/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks "$checks" \
    --phases "$run_phases" \
    "${limits[@]}" \
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
# How many links the stateful phase walked: schemathesis' own count (`covered / selected /
# total (inferred)`: inferred links are its guesses from the schema, counted in the total), and
# from scripts/schemathesis_hooks.py the same split into the document's links and inferred ones,
# with the links not walked and the statuses of the steps made through them.
for who in app admin; do
  links="$(grep -Eo 'API Links: +[0-9]+ covered / [0-9]+ selected / [0-9]+ total( \([0-9]+ inferred\))?' \
    "$out/$who-stateful.log" | sed -E 's/API Links: +//' | tail -n 1 || true)"
  echo "schemathesis links ($who credential, stateful): ${links:-not reported}"
  "$venv/bin/python" - "$who" "$out/$who-stateful-links.json" <<'EOF_LINKS' || true
import json
import sys

who, path = sys.argv[1:3]
try:
    report = json.load(open(path))
except OSError:
    sys.exit(f"  no link report: {path}")
links = report["links"]
declared = {k: v for k, v in links.items() if not v["inferred"]}
inferred = {k: v for k, v in links.items() if v["inferred"]}
def covered(d):
    return sum(1 for v in d.values() if v["covered"])
def answered_2xx(d):
    return sum(1 for v in d.values() if any(s.startswith("2") for s in v["statuses"]))
print(
    f"  {who}: {report['scenarios']} scenarios; links followed {covered(links)} of {len(links)}: "
    f"declared {covered(declared)} of {len(declared)}, inferred {covered(inferred)} of {len(inferred)}; "
    f"answered 2xx at least once through {answered_2xx(links)}"
)
if who == "admin":
    print("  stateful steps by operation (status: count):")
    for label, statuses in sorted(report.get("operations", {}).items()):
        print(f"    {label}: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
missed = [k for k, v in links.items() if not v["covered"]]
if missed and who == "admin":
    print(f"  not followed ({len(missed)}):")
    for k in missed:
        print(f"    {k}{' (inferred)' if links[k]['inferred'] else ''}")
EOF_LINKS
done
echo "schemathesis: $((SECONDS - start)) s in all"
if [ "$rc" -ne 0 ]; then
  echo "schemathesis found problems (exit $rc); server log: see above, reports in $out" >&2
  tail -n 50 "$work/unit/serve.log" "$work/stateful/serve.log" >&2
fi
exit "$rc"
