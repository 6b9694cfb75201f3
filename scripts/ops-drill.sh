#!/usr/bin/env bash
# The backup / restore drill and the export / import move of docs/operations.md, run for real
# against a throwaway instance: every command of those sections, in order.
#
#   scripts/ops-drill.sh                      # SQLite to SQLite
#   TOKENWARDEN_DRILL_POSTGRES_URL=postgres://user@127.0.0.1:5432/empty_db scripts/ops-drill.sh
#                                             # the import goes into that (empty) PostgreSQL database
#
# Uses $TOKENWARDEN_BIN, else target/debug/tokenwarden (run `cargo build` first). Needs curl and
# jq. Exits non-zero at the first step that does not do what the guide says.
set -euo pipefail

BIN=${TOKENWARDEN_BIN:-${CARGO_TARGET_DIR:-target}/debug/tokenwarden}
BIN=$(realpath "$BIN")
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "ops-drill: FAILED: $*" >&2; exit 1; }
step() { echo "--- $*"; }

export NO_COLOR=1
export TOKENWARDEN_ADMIN_TOKEN=drill-admin-token-0123456789abcdefghij
export TOKENWARDEN_ENGINE_INTERVAL=off
unset TOKENWARDEN_MASTER_KEY TOKENWARDEN_DATABASE_URL
head -c 32 /dev/urandom | base64 > "$WORK/master.key"
chmod 600 "$WORK/master.key"
export TOKENWARDEN_MASTER_KEY_FILE="$WORK/master.key"

# Starts `serve` with the arguments given; prints its base URL once it listens.
start() {
    local log=$1; shift
    "$BIN" "$@" serve --listen 127.0.0.1:0 2>"$log" >/dev/null &
    PIDS+=($!)
    for _ in $(seq 1 300); do
        if grep -q "tokenwarden is listening" "$log"; then
            grep -o 'address=http://[0-9.:]*' "$log" | head -1 | cut -d= -f2
            return
        fi
        sleep 0.1
    done
    cat "$log" >&2
    fail "serve did not start"
}
api() { # METHOD BASE PATH [JSON]
    curl -fsS -X "$1" -H "authorization: Bearer $TOKENWARDEN_ADMIN_TOKEN" \
        -H 'content-type: application/json' ${4:+--data "$4"} "$2$3"
}
names() { api GET "$1" "/api/v1/tokens?limit=1000" | jq -r '.items[].name' | sort; }

step "a live instance with an app, tokens and a channel"
LIVE=$(start "$WORK/live.log" --data-dir "$WORK/live")
api POST "$LIVE" /api/v1/apps '{"name":"sales","tokens":["warehouse"]}' >/dev/null
api POST "$LIVE" /api/v1/tokens \
    '{"name":"warehouse","provider":"snowflake","client_id":"CID","settings":{"account":"xy12345.us-east-1","role":"ANALYST"}}' >/dev/null
api POST "$LIVE" /api/v1/notification-channels \
    '{"name":"ops","kind":"webhook","url":"https://hooks.example.test/tw"}' >/dev/null

step "backup while it runs and takes writes"
( for i in $(seq 1 40); do
      api POST "$LIVE" /api/v1/tokens "{\"name\":\"load-$i\",\"provider\":\"snowflake\",\"settings\":{\"account\":\"xy12345.us-east-1\",\"role\":\"R$i\"}}" >/dev/null
  done ) &
LOAD=$!
"$BIN" --data-dir "$WORK/live" backup --output "$WORK/tokenwarden.twbak"
wait "$LOAD"
head -1 "$WORK/tokenwarden.twbak" | jq -e '.format == "tokenwarden-backup" and .backend == "sqlite"' >/dev/null \
    || fail "the backup header"

step "restore refuses a wrong key and a non-empty folder"
head -c 32 /dev/urandom | base64 > "$WORK/other.key"
chmod 600 "$WORK/other.key"
if TOKENWARDEN_MASTER_KEY_FILE="$WORK/other.key" \
    "$BIN" --data-dir "$WORK/refused" restore "$WORK/tokenwarden.twbak" 2>"$WORK/err"; then
    fail "a wrong key was accepted"
fi
grep -q "wrong master key" "$WORK/err" || fail "no reason given: $(cat "$WORK/err")"
[ ! -e "$WORK/refused" ] || fail "a refused restore wrote something"

step "restore into a new folder and serve it (the drill)"
unset TOKENWARDEN_MASTER_KEY_FILE
"$BIN" --data-dir "$WORK/restored" restore "$WORK/tokenwarden.twbak" \
    --master-key-file "$WORK/master.key"
if "$BIN" --data-dir "$WORK/restored" restore "$WORK/tokenwarden.twbak" \
    --master-key-file "$WORK/master.key" 2>"$WORK/err"; then
    fail "restored over data"
fi
grep -q "not empty" "$WORK/err" || fail "no reason given: $(cat "$WORK/err")"
RESTORED=$(start "$WORK/restored.log" --data-dir "$WORK/restored")
names "$RESTORED" | grep -qx warehouse || fail "the restored instance lacks the token"
export TOKENWARDEN_MASTER_KEY_FILE="$WORK/master.key"

step "export, import (dry run first), import again"
export TOKENWARDEN_PASSPHRASE="drill passphrase, long enough"
printf '%s\n' "$TOKENWARDEN_PASSPHRASE" > "$WORK/export-passphrase"
unset TOKENWARDEN_PASSPHRASE
"$BIN" --data-dir "$WORK/live" export --with-secrets \
    --passphrase-file "$WORK/export-passphrase" --output "$WORK/tokenwarden-export.json"
"$BIN" --data-dir "$WORK/live" export --output "$WORK/plain-before.json"
if [ -n "${TOKENWARDEN_DRILL_POSTGRES_URL:-}" ]; then
    export TOKENWARDEN_DATABASE_URL=$TOKENWARDEN_DRILL_POSTGRES_URL
fi
head -c 32 /dev/urandom | base64 > "$WORK/new.key"
chmod 600 "$WORK/new.key"
export TOKENWARDEN_MASTER_KEY_FILE="$WORK/new.key"
"$BIN" --data-dir "$WORK/new" migrate >/dev/null
"$BIN" --data-dir "$WORK/new" import "$WORK/tokenwarden-export.json" \
    --passphrase-file "$WORK/export-passphrase" --dry-run | tee "$WORK/dry"
grep -qx "would create app sales" "$WORK/dry" || fail "the dry run"
"$BIN" --data-dir "$WORK/new" import "$WORK/tokenwarden-export.json" \
    --passphrase-file "$WORK/export-passphrase" >/dev/null
again=$("$BIN" --data-dir "$WORK/new" import "$WORK/tokenwarden-export.json" \
    --passphrase-file "$WORK/export-passphrase")
[ -z "$again" ] || fail "a second import changed: $again"
"$BIN" --data-dir "$WORK/new" export --output "$WORK/plain-after.json"
diff <(jq 'del(.exported_at)' "$WORK/plain-before.json") <(jq 'del(.exported_at)' "$WORK/plain-after.json") \
    || fail "the new instance's export differs"
NEW=$(start "$WORK/new.log" --data-dir "$WORK/new")
[ "$(names "$NEW")" = "$(names "$LIVE")" ] || fail "token lists differ"

echo "ops-drill: OK"
