#!/usr/bin/env bash
# docs/operations.md, run for real against throwaway instances: every command its ```sh blocks
# show, in order, with the paths of a machine (/etc/tokenwarden, /var/lib/tokenwarden,
# /usr/local/bin) moved into a scratch folder. Its last step fails if the guide shows a
# `tokenwarden` command (subcommand and flags) that the drill did not run.
#
#   scripts/ops-drill.sh                      # SQLite to SQLite
#   scripts/ops-drill.sh --short              # without the export / import move (argon2 in a
#                                             # debug build is slow; the CLI test
#                                             # issue13_export_from_sqlite_imports_into_postgres_idempotently
#                                             # covers it): what scripts/test.sh runs, < 60 s
#   TOKENWARDEN_DRILL_POSTGRES_URL=postgres://user@127.0.0.1:5432/empty_db scripts/ops-drill.sh
#                                             # the import (and "Several instances") go into that
#                                             # (empty) PostgreSQL database
#
# Uses $TOKENWARDEN_BIN, else target/debug/tokenwarden (run `cargo build` first). Needs curl and
# jq. Exits non-zero at the first step that does not do what the guide says.
set -euo pipefail
cd "$(dirname "$0")/.."
SHORT=
[ "${1:-}" = --short ] && SHORT=1
DOC=docs/operations.md

BIN=${TOKENWARDEN_BIN:-${CARGO_TARGET_DIR:-target}/debug/tokenwarden}
BIN=$(realpath "$BIN")
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    # `start` runs in a command substitution (a subshell): it writes its pids to a file.
    [ -f "$WORK/pids" ] && while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$WORK/pids"
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "ops-drill: FAILED: $*" >&2; exit 1; }
step() { echo "--- $*"; }
# Every tokenwarden command goes through here, so the last step can compare with the guide.
tw() { printf '%s\n' "$*" >> "$WORK/ran"; "$BIN" "$@"; }

export NO_COLOR=1
unset TOKENWARDEN_BIN
export TOKENWARDEN_ADMIN_TOKEN=drill-admin-token-0123456789abcdefghij
export TOKENWARDEN_ENGINE_INTERVAL=off
unset TOKENWARDEN_MASTER_KEY TOKENWARDEN_DATABASE_URL
head -c 32 /dev/urandom | base64 > "$WORK/master.key"
chmod 600 "$WORK/master.key"
export TOKENWARDEN_MASTER_KEY_FILE="$WORK/master.key"

# Starts `serve` with the arguments given, in the background of this shell ($LAUNCHED: its pid).
launch() {
    local log=$1; shift
    printf '%s\n' "$* serve" >> "$WORK/ran"
    "$BIN" "$@" serve --listen 127.0.0.1:0 2>"$log" >/dev/null &
    LAUNCHED=$!
    PIDS+=("$LAUNCHED")
    echo "$LAUNCHED" >> "$WORK/pids"
}
# Prints the base URL of the `serve` logging to $1 once it listens.
listening() {
    for _ in $(seq 1 300); do
        if grep -q "tokenwarden is listening" "$1"; then
            grep -o 'address=http://[0-9.:]*\|"address":"http://[0-9.:]*' "$1" | head -1 | grep -o 'http://[0-9.:]*'
            return
        fi
        sleep 0.1
    done
    cat "$1" >&2
    fail "serve did not start"
}
# Starts `serve` with the arguments given; prints its base URL once it listens.
start() { launch "$@"; listening "$1"; }
api() { # METHOD BASE PATH [JSON]
    curl -fsS -X "$1" -H "authorization: Bearer $TOKENWARDEN_ADMIN_TOKEN" \
        -H 'content-type: application/json' ${4:+--data "$4"} "$2$3"
}
names() { api GET "$1" "/api/v1/tokens?limit=1000" | jq -r '.items[].name' | sort; }

step "systemd: install the binary, the key, the configuration and the unit (machine paths under $WORK/root)"
ROOT="$WORK/root"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system" "$ROOT/var/lib/tokenwarden" "$ROOT/var/backups"
install -m 0755 "$BIN" "$ROOT/usr/local/bin/tokenwarden"
install -d -m 0700 "$ROOT/etc/tokenwarden"
head -c 32 /dev/urandom | base64 > "$ROOT/etc/tokenwarden/master.key"
chmod 600 "$ROOT/etc/tokenwarden/master.key"
install -m 0644 dist/tokenwarden.toml "$ROOT/etc/tokenwarden/tokenwarden.toml"
CONF="$ROOT/etc/tokenwarden/tokenwarden.toml"
# What the unit's Environment= lines give the service.
export TOKENWARDEN_DATA_DIR="$ROOT/var/lib/tokenwarden"
export TOKENWARDEN_MASTER_KEY_FILE="$ROOT/etc/tokenwarden/master.key"
tw --config "$CONF" config check > "$WORK/check" || fail "config check refused dist/tokenwarden.toml"
grep -q "configuration ok" "$WORK/check" || fail "config check: $(cat "$WORK/check")"
sed -e "s#/usr/local/bin/tokenwarden#$ROOT/usr/local/bin/tokenwarden#" \
    -e "s#/etc/tokenwarden#$ROOT/etc/tokenwarden#g" dist/tokenwarden.service \
    > "$ROOT/etc/systemd/system/tokenwarden.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$ROOT/etc/systemd/system/tokenwarden.service" 2>"$WORK/verify" \
        || { cat "$WORK/verify" >&2; fail "systemd-analyze verify refused the unit"; }
    ! grep -i "tokenwarden.service" "$WORK/verify" || fail "systemd-analyze verify: $(cat "$WORK/verify")"
else
    echo "(systemd-analyze is not installed: the unit is checked by the CLI test only)"
fi

step "the service as installed: JSON logs, request ids, the proxy's headers"
cp "$CONF" "$WORK/conf-before"
SVC_LOG="$WORK/service.log"
export TOKENWARDEN_LOG_FORMAT=json
launch "$SVC_LOG" --config "$CONF"
SVC_PID=$LAUNCHED
SVC=$(listening "$SVC_LOG")
unset TOKENWARDEN_LOG_FORMAT
curl -sS -D - -o /dev/null -H 'X-Forwarded-For: 198.51.100.7' -H 'X-Request-Id: proxy-check-1' "$SVC/healthz" \
    | tr -d '\r' > "$WORK/headers"
grep -qi '^x-request-id: proxy-check-1$' "$WORK/headers" || fail "the request id was not echoed: $(cat "$WORK/headers")"
grep -qi '^strict-transport-security:' "$WORK/headers" || fail "no HSTS behind an https public_url"
curl -sS -H 'X-Request-Id: proxy-check-1' "$SVC/healthz" >/dev/null
sleep 0.3
jq -c 'select(.target == "tokenwarden_server::access" and .request_id == "proxy-check-1")' "$SVC_LOG" > "$WORK/access"
[ "$(wc -l < "$WORK/access")" -eq 2 ] || fail "expected two access lines: $(cat "$SVC_LOG")"
jq -e 'select(.route == "/healthz" and .status == 200 and .method == "GET" and (.duration_ms | type) == "number")' \
    "$WORK/access" >/dev/null || fail "the access line: $(cat "$WORK/access")"
jq -c 'select(.target == "tokenwarden_server::access" and .status >= 500)' "$SVC_LOG" > "$WORK/errors"
[ ! -s "$WORK/errors" ] || fail "server errors: $(cat "$WORK/errors")"

step "key rotation, online"
api POST "$SVC" /api/v1/tokens \
    '{"name":"rotated","provider":"snowflake","client_id":"CID","settings":{"account":"xy12345.us-east-1","role":"R"}}' >/dev/null
tw --config "$CONF" keys rotate | tee "$WORK/rotate"
grep -q "new active key: k2" "$WORK/rotate" || fail "keys rotate"
tw --config "$CONF" keys verify
tw --config "$CONF" keys list | grep -q "^k2 *yes" || fail "keys list"
# Right after a rotation the old key is kept: instances may still seal with it for a minute.
if tw --config "$CONF" keys drop k1 2>"$WORK/err"; then fail "dropped a key just rotated away"; fi
grep -q "rotated less than 120 s ago" "$WORK/err" || fail "keys drop: $(cat "$WORK/err")"
if tw --config "$CONF" keys rotate --drop-old > "$WORK/out" 2>"$WORK/err"; then
    grep -q "removed keys" "$WORK/out" || fail "keys rotate --drop-old: $(cat "$WORK/out")"
else
    grep -q "less than 120 s ago" "$WORK/err" || fail "keys rotate --drop-old: $(cat "$WORK/err")"
fi

step "upgrading: back up, install, migrate (the running service keeps serving)"
tw --config "$CONF" backup --output "$ROOT/var/backups/tokenwarden-before-upgrade.twbak"
install -m 0755 "$BIN" "$ROOT/usr/local/bin/tokenwarden"
tw --config "$CONF" migrate
curl -fsS "$SVC/readyz" >/dev/null || fail "not ready after migrate"

step "signals: SIGHUP reloads the log filter and says what needs a restart, SIGTERM stops with 0"
sed -i 's/^log = .*/log = "warn"/' "$CONF"
echo 'max_body_bytes = 4096' >> "$CONF"   # no [table] is open at the end of the shipped file
kill -HUP "$SVC_PID"
for _ in $(seq 1 100); do grep -q "SIGHUP: configuration reloaded" "$SVC_LOG" && break; sleep 0.1; done
jq -c 'select(.message == "SIGHUP: configuration reloaded" and .reloaded == "log" and .needs_restart == "max_body_bytes")' \
    "$SVC_LOG" | grep -q . || fail "the reload line: $(grep SIGHUP "$SVC_LOG")"
before=$(grep -c '"tokenwarden_server::access"' "$SVC_LOG")
curl -fsS "$SVC/healthz" >/dev/null
sleep 0.3
[ "$(grep -c '"tokenwarden_server::access"' "$SVC_LOG")" -eq "$before" ] || fail "log = warn was not applied"
cp "$WORK/conf-before" "$CONF"   # back to log = "info", to see the stop's lines
kill -HUP "$SVC_PID"
for _ in $(seq 1 100); do [ "$(grep -c 'SIGHUP: configuration reloaded' "$SVC_LOG")" -ge 2 ] && break; sleep 0.1; done
kill -TERM "$SVC_PID"
rc=0; wait "$SVC_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "serve exited $rc on SIGTERM"
grep -q '"message":"stopped"' "$SVC_LOG" || fail "no 'stopped' line: $(tail -5 "$SVC_LOG")"
cp "$WORK/conf-before" "$CONF"

if [ -n "${TOKENWARDEN_DRILL_POSTGRES_URL:-}" ]; then
    step "several instances on PostgreSQL: two instances on one database"
    printf '%s\n' "$TOKENWARDEN_DRILL_POSTGRES_URL" > "$ROOT/etc/tokenwarden/database-url"
    (
        export TOKENWARDEN_DATABASE_URL_FILE="$ROOT/etc/tokenwarden/database-url"
        unset TOKENWARDEN_DATA_DIR
        tw migrate
        A=$(start "$WORK/pg-a.log" --data-dir "$WORK/pg-a")
        B=$(start "$WORK/pg-b.log" --data-dir "$WORK/pg-b")
        api POST "$A" /api/v1/apps '{"name":"shared"}' >/dev/null
        api GET "$B" "/api/v1/apps?limit=1000" | jq -e '.items[] | select(.name == "shared")' >/dev/null \
            || fail "the second instance does not see the first one's app"
    )
fi
unset TOKENWARDEN_DATA_DIR
export TOKENWARDEN_MASTER_KEY_FILE="$WORK/master.key"

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
tw --data-dir "$WORK/live" backup --output "$WORK/tokenwarden.twbak"
wait "$LOAD"
head -1 "$WORK/tokenwarden.twbak" | jq -e '.format == "tokenwarden-backup" and .backend == "sqlite"' >/dev/null \
    || fail "the backup header"

step "restore refuses a wrong key and a non-empty folder"
head -c 32 /dev/urandom | base64 > "$WORK/other.key"
chmod 600 "$WORK/other.key"
if TOKENWARDEN_MASTER_KEY_FILE="$WORK/other.key" \
    tw --data-dir "$WORK/refused" restore "$WORK/tokenwarden.twbak" 2>"$WORK/err"; then
    fail "a wrong key was accepted"
fi
grep -q "wrong master key" "$WORK/err" || fail "no reason given: $(cat "$WORK/err")"
[ ! -e "$WORK/refused" ] || fail "a refused restore wrote something"

step "restore into a new folder and serve it (the drill)"
unset TOKENWARDEN_MASTER_KEY_FILE
tw --data-dir "$WORK/restored" restore "$WORK/tokenwarden.twbak" \
    --master-key-file "$WORK/master.key"
if tw --data-dir "$WORK/restored" restore "$WORK/tokenwarden.twbak" \
    --master-key-file "$WORK/master.key" 2>"$WORK/err"; then
    fail "restored over data"
fi
grep -q "not empty" "$WORK/err" || fail "no reason given: $(cat "$WORK/err")"
RESTORED=$(start "$WORK/restored.log" --data-dir "$WORK/restored")
names "$RESTORED" | grep -qx warehouse || fail "the restored instance lacks the token"
export TOKENWARDEN_MASTER_KEY_FILE="$WORK/master.key"

if [ -z "$SHORT" ]; then
step "export, import (dry run first), import again"
export TOKENWARDEN_PASSPHRASE="drill passphrase, long enough"
printf '%s\n' "$TOKENWARDEN_PASSPHRASE" > "$WORK/export-passphrase"
unset TOKENWARDEN_PASSPHRASE
tw --data-dir "$WORK/live" export --with-secrets \
    --passphrase-file "$WORK/export-passphrase" --output "$WORK/tokenwarden-export.json"
tw --data-dir "$WORK/live" export --output "$WORK/plain-before.json"
if [ -n "${TOKENWARDEN_DRILL_POSTGRES_URL:-}" ]; then
    export TOKENWARDEN_DATABASE_URL=$TOKENWARDEN_DRILL_POSTGRES_URL
fi
head -c 32 /dev/urandom | base64 > "$WORK/new.key"
chmod 600 "$WORK/new.key"
export TOKENWARDEN_MASTER_KEY_FILE="$WORK/new.key"
tw --data-dir "$WORK/new" migrate >/dev/null
tw --data-dir "$WORK/new" import "$WORK/tokenwarden-export.json" \
    --passphrase-file "$WORK/export-passphrase" --dry-run | tee "$WORK/dry"
grep -qx "would create app sales" "$WORK/dry" || fail "the dry run"
tw --data-dir "$WORK/new" import "$WORK/tokenwarden-export.json" \
    --passphrase-file "$WORK/export-passphrase" >/dev/null
again=$(tw --data-dir "$WORK/new" import "$WORK/tokenwarden-export.json" \
    --passphrase-file "$WORK/export-passphrase")
[ -z "$again" ] || fail "a second import changed: $again"
tw --data-dir "$WORK/new" export --output "$WORK/plain-after.json"
diff <(jq 'del(.exported_at)' "$WORK/plain-before.json") <(jq 'del(.exported_at)' "$WORK/plain-after.json") \
    || fail "the new instance's export differs"
NEW=$(start "$WORK/new.log" --data-dir "$WORK/new")
[ "$(names "$NEW")" = "$(names "$LIVE")" ] || fail "token lists differ"
else
    echo "(--short: export and import are left to the CLI test; their section is not checked below)"
fi

step "every tokenwarden command of $DOC was run"
python3 - "$DOC" "$WORK/ran" "$SHORT" <<'PY'
import re, sys
doc, ran = open(sys.argv[1]).read(), open(sys.argv[2]).read().splitlines()
if sys.argv[3]:  # --short: the export / import section was not run
    doc = re.sub(r"\n## Export and import.*?(?=\n## )", "\n", doc, flags=re.S)
VALUED = {"--config", "--data-dir", "--database-url", "--log-format", "--output", "--listen",
          "--master-key-file", "--passphrase-file", "--label", "--token", "--app", "--password-file"}
GROUPS = {"keys", "app", "token", "admin", "config"}
def key(words):
    """The command path (`keys rotate`, `admin token create`) and the options given."""
    flags, rest, i = set(), [], 0
    while i < len(words):
        w = words[i]
        if w in VALUED:
            flags.add(w); i += 2; continue
        if w.startswith("-"):
            flags.add(w)
        else:
            rest.append(w)
        i += 1
    n = 1 + (bool(rest) and rest[0] in GROUPS) + (rest[:2] == ["admin", "token"])
    return tuple(rest[:n]), flags
missing = []
for block in re.findall(r"```sh\n(.*?)```", doc, re.S):
    for line in block.replace("\\\n", " ").splitlines():
        words = line.split("#")[0].split()
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words.pop(0)
        if not words or words[0] != "tokenwarden":
            continue
        cmd, flags = key(words[1:])
        if not any(key(r.split())[0] == cmd and flags <= key(r.split())[1] for r in ran):
            missing.append(line.strip())
if missing:
    sys.exit("the guide shows commands the drill did not run:\n  " + "\n  ".join(missing))
print(f"{len(ran)} tokenwarden commands run; every one the guide shows is among them")
PY

echo "ops-drill: OK"
