#!/usr/bin/env bash
# Benchmark of the hot path: apps reading a current access token (GET /api/v1/access-tokens/NAME)
# from one release-built `tokenwarden serve` on SQLite, with the Snowflake emulator as provider.
# Installs wrk (Debian) if missing. Writes bench/results/read_path.txt. Loopback only.
#   bench/read_path.sh [DURATION_SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-32}"
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p tokenwarden -p snowflake-emulator
work="$(mktemp -d)"
cleanup() { kill "${TW_PID:-}" "${EMU_PID:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
EMU_PORT=19300; TW_PORT=18420; ADMIN="bench-admin-token-0123456789abcdef"
./target/release/snowflake-emulator --listen 127.0.0.1:$EMU_PORT >"$work/emu.log" 2>&1 & EMU_PID=$!
(cd "$work" && TOKENWARDEN_ADMIN_TOKEN=$ADMIN TOKENWARDEN_LOG=warn exec "$OLDPWD/target/release/tokenwarden" serve --listen 127.0.0.1:$TW_PORT) >"$work/tw.log" 2>&1 & TW_PID=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:$TW_PORT/healthz >/dev/null && curl -sf http://127.0.0.1:$EMU_PORT/ >/dev/null && break; sleep 0.2; done
python3 - "$TW_PORT" "$EMU_PORT" "$ADMIN" >"$work/key" <<'PY'
import json, re, sys, urllib.parse, urllib.request, http.client
tw, emu, admin = sys.argv[1], sys.argv[2], sys.argv[3]
def call(method, url, body=None, headers=None, ctype="application/json"):
    h = {"Authorization": f"Bearer {admin}"}
    h.update(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h["Content-Type"] = ctype
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=h, method=method)) as r:
        return json.loads(r.read() or b"null")
base = f"http://127.0.0.1:{tw}"
app = call("POST", f"{base}/api/v1/apps", {"name": "bench", "tokens": ["sf"]})
tok = call("POST", f"{base}/api/v1/tokens", {"name": "sf", "provider": "snowflake", "settings": {"account": f"http://127.0.0.1:{emu}", "role": "ANALYST"}})
sql = call("GET", f"{base}/api/v1/tokens/{tok['id']}/setup")["snowflake"]["sql"]
run = lambda stmt: json.loads(urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{emu}/api/v2/statements", data=json.dumps({"statement": stmt}).encode(), headers={"Content-Type": "application/json", "Authorization": "Basic QURNSU46YWRtaW4tcGFzcw=="})).read())
for stmt in [s.strip() for s in sql.split(";") if s.strip()]:
    out = run(stmt)
cell = out["data"][0][0]
call("POST", f"{base}/api/v1/tokens/{tok['id']}/client-secrets", cell.encode(), ctype="text/plain")
url = call("POST", f"{base}/api/v1/tokens/{tok['id']}/authorize")["authorization_url"]
p = urllib.parse.urlsplit(url)
c = http.client.HTTPConnection(p.hostname, p.port)
c.request("POST", p.path + "?" + p.query, urllib.parse.urlencode({"username": "ALICE", "password": "alice-pass"}), {"Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); page = r.read().decode()
consent = r.getheader("x-emulator-consent-id") or re.search(r'name="consent_id" value="([^"]+)"', page).group(1)
c.request("POST", "/oauth/authorize/consent", urllib.parse.urlencode({"consent_id": consent, "decision": "allow"}), {"Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); r.read()
urllib.request.urlopen(r.getheader("Location")).read()
print(app["api_key"])
PY
KEY="$(cat "$work/key")"
curl -sf -H "Authorization: Bearer $KEY" http://127.0.0.1:$TW_PORT/api/v1/access-tokens/sf >/dev/null
mkdir -p bench/results
{
  echo "# tokenwarden read path: GET /api/v1/access-tokens/sf with an app key"
  echo "# $(date -u +%FT%TZ)  $(nproc) cores  release build  SQLite  wrk -t2 -c$CONNS -d${DURATION}s  (client and server share the machine)"
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $KEY" "http://127.0.0.1:$TW_PORT/api/v1/access-tokens/sf"
} | tee bench/results/read_path.txt
