#!/usr/bin/env bash
# Registry load benchmark: a real `a8 registry` process on loopback under wrk, on this machine.
# Measures heartbeats/s (64 connections), the latency of listing a service of 1,000 instances (one
# connection), and registrations/s of new instances (64 connections), on the memory store or Redis.
#
#   apt-get install -y wrk redis-server    # once
#   bench/registry/run.sh                  # memory store
#   STORE=redis bench/registry/run.sh      # Redis store (starts its own redis-server)
set -euo pipefail
cd "$(dirname "$0")/../.."

STORE=${STORE:-memory}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
INSTANCES=${INSTANCES:-1000}
PORT=${PORT:-18080}
REDIS_PORT=${REDIS_PORT:-16379}

for tool in wrk curl go; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y $tool)" >&2; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/a8" ./cmd/a8
args=(registry --api_port "$PORT" --log_level warn)
if [ "$STORE" = redis ]; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$tmp/redis.log" 2>&1 &
  pids+=($!)
  args+=(--store redis --store_address "127.0.0.1:$REDIS_PORT")
fi
"$tmp/a8" "${args[@]}" 2>"$tmp/a8.log" &
pids+=($!)
url="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -fs "$url/uptime" >/dev/null && break; sleep 0.1; done

echo "# a8 registry, store=$STORE, $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%F)"
echo "registering $INSTANCES instances of service 'big'..."
: >"$tmp/ids"
for i in $(seq 0 $((INSTANCES - 1))); do
  echo "{\"service_name\":\"big\",\"endpoint\":{\"type\":\"http\",\"value\":\"10.0.$((i / 256)).$((i % 256)):9080\"},\"tags\":[\"version=v1\"],\"metadata\":{\"zone\":\"a\"},\"ttl\":600}"
done | xargs -d '\n' -P 8 -I{} curl -fs -X POST "$url/api/v1/instances" -H 'Content-Type: application/json' -d '{}' \
  | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4 >"$tmp/ids"
echo "registered $(wc -l <"$tmp/ids")"

echo; echo "## heartbeats ($CONNECTIONS connections, $DURATION)"
IDS_FILE="$tmp/ids" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/registry/heartbeat.lua "$url" \
  | grep -E 'Requests/sec|^ +(50|99)%|Non-2xx|Socket errors'

echo; echo "## list one service of $INSTANCES instances (1 connection, $DURATION)"
wrk -t1 -c1 -d"$DURATION" --latency "$url/api/v1/instances?service_name=big" \
  | grep -E 'Requests/sec|^ +(50|90|99)%|Non-2xx'

echo; echo "## registrations of new instances ($CONNECTIONS connections, $DURATION)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/registry/register.lua "$url" \
  | grep -E 'Requests/sec|^ +(50|99)%|Non-2xx|Socket errors'
