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
python3 bench/authorize.py "$TW_PORT" "$EMU_PORT" "$ADMIN" >"$work/key"
KEY="$(cat "$work/key")"
curl -sf -H "Authorization: Bearer $KEY" http://127.0.0.1:$TW_PORT/api/v1/access-tokens/sf >/dev/null
mkdir -p bench/results
{
  echo "# tokenwarden read path: GET /api/v1/access-tokens/sf with an app key"
  echo "# $(date -u +%FT%TZ)  $(nproc) cores  release build  SQLite  wrk -t2 -c$CONNS -d${DURATION}s  (client and server share the machine)"
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $KEY" "http://127.0.0.1:$TW_PORT/api/v1/access-tokens/sf"
} | tee bench/results/read_path.txt
