#!/usr/bin/env bash
# `propexo-webhooks bench` against wrk: the same release axum receiver (examples/axum_receiver.rs,
# one tokio worker, pinned to CPU 0), the same connections, the client pinned to CPU 1, in one
# run, alternating. The command must reach wrk's throughput: the load tool is not the bottleneck.
#
#   scripts/load-cli.sh                  # 2 rounds of 10 s each, 64 connections
#   DURATION=30 CONNECTIONS=128 ROUNDS=3 scripts/load-cli.sh
#
# wrk re-sends one signed lease DATA_UPDATE (the receiver is told to forget handled deliveries at
# once, so each is handled in full); the command sends distinct ones, each signed. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${DURATION:-10}"
connections="${CONNECTIONS:-64}"
rounds="${ROUNDS:-2}"
secret="load-benchmark-secret-0123456789"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out_dir="$target_dir/load-cli"
mkdir -p "$out_dir"
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }

cargo build --release --features axum --example axum_receiver
cargo build --release -p propexo-webhooks-cli
cli="$target_dir/release/propexo-webhooks"
url="http://127.0.0.1:3102/webhooks/propexo"

"$cli" fixtures show data_update.envelope >"$out_dir/body.json"
signature=$(PROPEXO_WEBHOOK_SECRET="$secret" "$cli" sign "$out_dir/body.json")
cat >"$out_dir/post.lua" <<LUA
local f = io.open("$out_dir/body.json", "rb")
wrk.method = "POST"; wrk.body = f:read("*a"); f:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["propexo-signature"] = "$signature"
LUA

pin_server=(); pin_client=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_server=(taskset -c 0); pin_client=(taskset -c 1)
fi
env PROPEXO_WEBHOOK_SECRET="$secret" IDEMPOTENCY_TTL_MS=0 BIND=127.0.0.1:3102 \
    TOKIO_WORKER_THREADS=1 "${pin_server[@]}" "$target_dir/release/examples/axum_receiver" \
    2>"$out_dir/receiver.log" &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null -X POST "$url" && break; sleep 0.1; done
"${pin_client[@]}" wrk -t1 -c"$connections" -d2s -s "$out_dir/post.lua" "$url" >/dev/null

for round in $(seq "$rounds"); do
    wrk_rps=$("${pin_client[@]}" wrk -t1 -c"$connections" -d"${duration}s" -s "$out_dir/post.lua" \
        "$url" | awk '/Requests\/sec/ {print $2}')
    cli_rps=$(PROPEXO_WEBHOOK_SECRET="$secret" "${pin_client[@]}" "$cli" bench "$url" \
        -c "$connections" -d "${duration}s" -t 1 --json | python3 -c \
        'import json,sys; print(round(json.load(sys.stdin)["throughput_per_s"]))')
    echo "round $round: wrk $wrk_rps req/s, propexo-webhooks bench $cli_rps req/s"
done
