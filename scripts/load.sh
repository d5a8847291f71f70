#!/usr/bin/env bash
# HTTP load benchmark: the axum receiver (examples/axum_receiver.rs, release mode) against a bare
# axum server that only reads the body (benches/load/bare_axum.rs), under the same wrk load of
# signed 1 KiB DATA_UPDATE deliveries over 127.0.0.1, in one run.
#
#   scripts/load.sh                      # 10 s per server, 64 connections
#   DURATION=30s CONNECTIONS=128 scripts/load.sh
#
# The server is pinned to CPU 0 and wrk to CPU 1 (when there are two), so the two do not compete.
# Prints requests/s, p50/p99 latency, non-2xx answers and server CPU time per request, and writes
# them to target/load/results.json for scripts/bench-report.py. Loopback only, bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${DURATION:-10s}"
connections="${CONNECTIONS:-64}"
warmup="${WARMUP:-2s}"
secret="load-benchmark-secret-0123456789"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out_dir="$target_dir/load"
mkdir -p "$out_dir"

if ! command -v wrk >/dev/null; then
    echo "wrk is not installed; trying Debian's package" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null; else sudo apt-get install -y wrk >/dev/null; fi
fi

cargo build --release --features axum --example axum_receiver --example load_bare_axum
examples="$target_dir/release/examples"

# A realistic 1 KiB DATA_UPDATE of a lease, signed once (the receiver is told to forget handled
# deliveries at once, so each request is verified, parsed and dispatched in full).
body_file="$out_dir/body.json"
python3 - "$body_file" <<'PY'
import json, sys
def body(fields, pad=""):
    custom = {f"custom_field_{n:02}": f"value-{n:04}" for n in range(fields)}
    return {"trigger": "DATA_UPDATE", "data": {"event": "DATA_UPDATE", "job_id": "clz8job0002",
        "root_job_id": "clz8root0002", "integration_id": "cly301lrc000009jvbp6vaz7i",
        "job_type": "READ_LEASES", "vendor": "ENTRATA", "record_id": "clz8lease0001",
        "object": "leases", "diff": {"new": {"rent_amount_in_cents": 185000, **custom},
        "previous": {"rent_amount_in_cents": 180000}}, "context": {"property_id": "clz8prop0001",
        "note": pad}}, "meta": {"object": "leases", "integration_id": "cly301lrc000009jvbp6vaz7i"}}
compact = lambda value: json.dumps(value, separators=(",", ":"))
fields = 0
while len(compact(body(fields + 1))) <= 1024:
    fields += 1
text = compact(body(fields, "x" * (1024 - len(compact(body(fields))))))
assert len(text) == 1024, len(text)
open(sys.argv[1], "w").write(text)
PY
signature=$(openssl dgst -sha256 -hmac "$secret" < "$body_file" | awk '{print $NF}')

lua="$out_dir/post.lua"
cat > "$lua" <<LUA
local f = io.open("$body_file", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["propexo-signature"] = "$signature"
done = function(summary, latency, requests)
  local out = io.open(os.getenv("WRK_RESULT"), "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
  out:close()
end
LUA

cpus=$(nproc)
pin_server=(); pin_client=()
if [ "$cpus" -ge 2 ] && command -v taskset >/dev/null; then
    pin_server=(taskset -c 0); pin_client=(taskset -c 1)
fi
clock_ticks=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # name binary port
    local name=$1 binary=$2 port=$3 url="http://127.0.0.1:$3/webhooks/propexo"
    env PROPEXO_WEBHOOK_SECRET="$secret" IDEMPOTENCY_TTL_MS=0 BIND="127.0.0.1:$port" \
        TOKIO_WORKER_THREADS=1 "${pin_server[@]}" "$binary" 2>"$out_dir/$name.log" &
    local pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "$url" -X POST && break
        sleep 0.1
    done
    WRK_RESULT=/dev/null "${pin_client[@]}" wrk -t1 -c"$connections" -d"$warmup" -s "$lua" "$url" >/dev/null
    local before; before=$(cpu_ticks "$pid")
    WRK_RESULT="$out_dir/$name.json" "${pin_client[@]}" wrk -t1 -c"$connections" -d"$duration" \
        -s "$lua" --latency "$url" >"$out_dir/$name.wrk.txt"
    local after; after=$(cpu_ticks "$pid")
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$out_dir/$name.json" "$before" "$after" "$clock_ticks" <<'PY'
import json, sys
path, before, after, ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
result = json.load(open(path))
result["requests_per_s"] = result["requests"] / (result["duration_us"] / 1e6)
result["cpu_us_per_request"] = (after - before) / ticks * 1e6 / max(result["requests"], 1)
json.dump(result, open(path, "w"))
PY
}

run receiver "$examples/axum_receiver" 3100
run bare "$examples/load_bare_axum" 3101

python3 - "$out_dir" "$duration" "$connections" <<'PY'
import json, sys, os, datetime, platform
out, duration, connections = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(os.path.join(out, "receiver.json")))
b = json.load(open(os.path.join(out, "bare.json")))
rows = [("axum receiver", r), ("bare axum", b)]
print(f"\n{duration} per server, {connections} connections, 1 KiB signed DATA_UPDATE bodies\n")
print(f"{'server':<15} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'CPU us/req':>11}")
for name, x in rows:
    print(f"{name:<15} {x['requests_per_s']:>10.0f} {x['p50_us']/1000:>8.2f} {x['p99_us']/1000:>8.2f} "
          f"{x['non_2xx']:>8} {x['cpu_us_per_request']:>11.1f}")
throughput = r["requests_per_s"] / b["requests_per_s"]
cpu = r["cpu_us_per_request"] / b["cpu_us_per_request"]
print(f"\nreceiver / bare: requests/s {throughput:.2f}x (target >= 0.8), "
      f"CPU per request {cpu:.2f}x (target <= 1.3)")
summary = {"date": datetime.date.today().isoformat(), "duration": duration,
           "connections": int(connections), "receiver": r, "bare": b,
           "throughput_ratio": throughput, "cpu_ratio": cpu}
json.dump(summary, open(os.path.join(out, "results.json"), "w"), indent=2)
PY
