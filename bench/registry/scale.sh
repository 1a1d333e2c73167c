#!/usr/bin/env bash
# Registry scale (issue 8): the Go scale benchmark at full size (one tenant of 10,000 services and
# 100,000 instances; list, watch, heartbeat and memory figures, on the memory store and on Redis),
# then the ceiling: redis-benchmark against a throwaway redis-server on this machine, so that our
# Redis figures can be read against what Redis itself does on the same cores.
#
#   apt-get install -y redis-server         # once (redis-server and redis-benchmark)
#   bench/registry/scale.sh                 # both parts, both stores
#   STORE=redis bench/registry/scale.sh     # the Go benchmark on Redis only (memory, redis, all)
#   PARTS=ceiling bench/registry/scale.sh   # redis-benchmark only (go, ceiling, all)
set -euo pipefail
cd "$(dirname "$0")/../.."

STORE=${STORE:-all}          # memory, redis or all
PARTS=${PARTS:-all}          # go, ceiling or all
SCALE=${SCALE:-full}         # A8_BENCH_SCALE for the Go benchmark: full or smoke
BENCHTIME=${BENCHTIME:-5s}   # per list and heartbeat sub-benchmark
WATCHTIME=${WATCHTIME:-20x}  # per watch sub-benchmark: iterations, two changes each
COUNT=${COUNT:-1}
REQUESTS=${REQUESTS:-100000} # redis-benchmark -n
CLIENTS=${CLIENTS:-64}       # redis-benchmark -c (our Go benchmarks use 64 clients too)
PIPELINE=${PIPELINE:-1}      # redis-benchmark -P; 1 is how the registry talks to Redis
REDIS_PORT=${REDIS_PORT:-}   # default: a free port

for tool in go redis-server redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y redis-server)" >&2; exit 1; }
done

echo "# registry scale, $(nproc) cores, $(go version | cut -d' ' -f3), $(redis-server --version | grep -o 'v=[0-9.]*'), $(date -u +%F)"

if [ "$PARTS" = all ] || [ "$PARTS" = go ]; then
  case "$STORE" in
    all) stores='(memory|redis)' ;;
    memory | redis) stores=$STORE ;;
    *) echo "STORE=$STORE: want memory, redis or all" >&2; exit 1 ;;
  esac
  # Lists and heartbeats run for a time; watches for a number of changes (two per iteration: a
  # registration and a deregistration), since a change of the whole tenant's list takes a second.
  # Each invocation fills its tenant again (seconds).
  for run in "Fill|List|Heartbeat $BENCHTIME" "Watch $WATCHTIME"; do
    set -- $run
    echo
    echo "## A8_BENCH_SCALE=$SCALE go test -run '^\$' -bench 'Scale/$stores/($1)' -benchtime $2 -count $COUNT -timeout 60m ./internal/registry/"
    A8_BENCH_SCALE=$SCALE go test -run '^$' -bench "Scale/$stores/($1)" -benchtime "$2" -count "$COUNT" -timeout 60m ./internal/registry/
  done
fi

if [ "$PARTS" = all ] || [ "$PARTS" = ceiling ]; then
  if [ -z "$REDIS_PORT" ]; then
    REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 16380)
  fi
  tmp=$(mktemp -d)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
  rpid=$!
  trap 'kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
  for _ in $(seq 100); do grep -q 'Ready to accept connections' "$tmp/redis.log" && break; sleep 0.1; done
  # -q prints progress lines ending in \r before each result; keep the results, and name the EVALs.
  result() { tr '\r' '\n' | grep 'requests per second' | sed -E "s/^ *eval .*: ([0-9.]+ requests)/EVAL ${1:-}: \1/"; }
  rb=(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -q -n "$REQUESTS" -c "$CLIENTS" -P "$PIPELINE")
  echo
  echo "## ceiling: ${rb[*]} (redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2) on port $REDIS_PORT, no persistence)"
  "${rb[@]}" -t set,get,hset | result
  # The shape of a heartbeat (the registry's renew script: ZSCORE, HGET, HSET, ZADD in one EVAL) and
  # of a registration's writes, on random ids of 100,000: the ceiling for our scripts, not just for
  # single commands.
  "${rb[@]}" -r 100000 eval "local e = redis.call('ZSCORE', KEYS[2], ARGV[1]) local l = redis.call('HGET', KEYS[1], ARGV[1]) redis.call('HSET', KEYS[1], ARGV[1], '1700000000000 600000') redis.call('ZADD', KEYS[2], 1700000600000, ARGV[1]) return 1" 2 leases expiry "id:__rand_int__" | result renew-shaped
  "${rb[@]}" -r 100000 eval "local e = redis.call('ZSCORE', KEYS[3], ARGV[1]) local o = redis.call('HGET', KEYS[1], ARGV[1]) redis.call('SADD', KEYS[5], ARGV[1]) redis.call('HSET', KEYS[1], ARGV[1], '{\"id\":\"0123456789abcdef\",\"service_name\":\"svc00001\",\"endpoint\":{\"type\":\"http\",\"value\":\"10.0.1.2:9080\"},\"status\":\"UP\",\"tags\":[\"version=v1\"],\"metadata\":{\"zone\":\"a\"},\"ttl\":600000000000}') redis.call('HSET', KEYS[2], ARGV[1], '1700000000000 600000') redis.call('ZADD', KEYS[3], 1700000600000, ARGV[1]) redis.call('SADD', 'namespaces', 'default') local i = redis.call('INCR', KEYS[4]) redis.call('PUBLISH', 'changes', i .. ' default') return 1" 5 instances leases expiry index service "id:__rand_int__" | result register-shaped
fi
