#!/usr/bin/env bash
# Soak: the sidecar proxy (a8-sidecar) under steady closed-loop load for a long run (10 minutes by default),
# sampling its resident memory, Go heap and goroutines, to show that nothing grows. Two helloworld
# upstreams and the sidecar (standalone, routes from a file) share core 0; wrk runs on core 1.
#
#   apt-get install -y --no-install-recommends wrk     # once
#   bench/proxy/soak.sh                                # DURATION=600 SAMPLE=30 CONNS=64 RULES=0
#
# It prints one line per sample and a verdict comparing the second minute with the last one (the
# first minute fills the records ring and the pools). Exit status 1 if RSS or heap grew by more
# than GROWTH_PCT percent, or goroutines by more than 10.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-600}   # seconds of load
SAMPLE=${SAMPLE:-30}        # seconds between samples
CONNS=${CONNS:-64}          # wrk connections
RULES=${RULES:-0}           # 1: a cookie rule, a header rule and a 50/50 split on the destination
GROWTH_PCT=${GROWTH_PCT:-10}
BASE_PORT=${BASE_PORT:-19080}
for b in wrk curl taskset go; do command -v $b >/dev/null || { echo "missing: $b" >&2; exit 1; }; done

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/" ./cmd/a8-sidecar ./examples/helloworld/cmd/helloworld

up1=$((BASE_PORT + 1)) up2=$((BASE_PORT + 2)) proxy=$((BASE_PORT + 20)) admin=$((BASE_PORT + 21))
for i in 1 2; do
  port=$((BASE_PORT + i))
  GOMAXPROCS=1 taskset -c 0 "$tmp/helloworld" --port "$port" --version "v$i" >/dev/null 2>&1 &
  pids+=($!)
done
{
  echo "instances:"
  echo "- {service_name: helloworld, endpoint: {type: http, value: \"127.0.0.1:$up1\"}, tags: [version=v1]}"
  echo "- {service_name: helloworld, endpoint: {type: http, value: \"127.0.0.1:$up2\"}, tags: [version=v2]}"
  echo "rules:"
  if [ "$RULES" = 1 ]; then
    echo "- {destination: helloworld, priority: 3, match: {headers: {Cookie: \"^(.*?;)?(user=jason)(;.*)?\$\"}}, route: {backends: [{tags: [version=v2]}]}}"
    echo "- {destination: helloworld, priority: 2, match: {headers: {X-Canary: \"^yes\$\"}}, route: {backends: [{tags: [version=v2]}]}}"
    echo "- {destination: helloworld, priority: 1, route: {backends: [{tags: [version=v1], weight: 0.5}, {tags: [version=v2]}]}}"
  else
    echo "  []"
  fi
} >"$tmp/routes.yaml"
GOMAXPROCS=1 taskset -c 0 "$tmp/a8-sidecar" --proxy --service soak --static_config "$tmp/routes.yaml" \
  --proxy_address 127.0.0.1 --proxy_port "$proxy" --admin_port "$admin" --log_level warn &
sidecar=$!
pids+=($sidecar)
url=http://127.0.0.1:$proxy/helloworld/hello
for _ in $(seq 150); do curl -sf "$url" >/dev/null && break; sleep 0.1; done
curl -sf "$url" >/dev/null || { echo "the sidecar did not answer on $url" >&2; exit 1; }

taskset -c 1 wrk -t2 -c"$CONNS" -d"${DURATION}s" "$url" >"$tmp/wrk.out" 2>&1 &
wrk=$!
pids+=($wrk)

metric() { curl -sf "http://127.0.0.1:$admin/metrics" | awk -v m="$1" '$1 == m {printf "%d", $2}'; }
printf "%6s %10s %12s %10s\n" "t(s)" "RSS(KiB)" "heap(KiB)" "goroutines"
declare -a ts rss heap gor
start=$SECONDS
while kill -0 "$wrk" 2>/dev/null; do
  sleep "$SAMPLE"
  kill -0 "$wrk" 2>/dev/null || break
  t=$((SECONDS - start))
  r=$(awk '/VmRSS/{print $2}' "/proc/$sidecar/status")
  h=$(($(metric go_memstats_heap_inuse_bytes) / 1024))
  g=$(metric go_goroutines)
  ts+=("$t") rss+=("$r") heap+=("$h") gor+=("$g")
  printf "%6d %10d %12d %10d\n" "$t" "$r" "$h" "$g"
done
wait "$wrk" || true
grep -E "Requests/sec|requests in|Socket errors|Non-2xx" "$tmp/wrk.out" || true

n=${#ts[@]}
[ "$n" -ge 2 ] || { echo "too few samples: run longer than 2×SAMPLE" >&2; exit 1; }
# Reference: the first sample after 60 s (or the first sample); last: the last sample.
ref=0
for i in "${!ts[@]}"; do if [ "${ts[$i]}" -ge 60 ]; then ref=$i; break; fi; done
[ "$ref" -lt $((n - 1)) ] || ref=0
last=$((n - 1))
verdict=0
check() { # name ref last
  local pct
  pct=$(awk -v a="$2" -v b="$3" 'BEGIN{printf "%.1f", (a > 0 ? (b - a) * 100 / a : 0)}')
  echo "$1: ${2} → ${3} (${pct} %) from t=${ts[$ref]}s to t=${ts[$last]}s"
  if awk -v p="$pct" -v g="$GROWTH_PCT" 'BEGIN{exit !(p > g)}'; then verdict=1; fi
}
check "RSS KiB" "${rss[$ref]}" "${rss[$last]}"
check "heap KiB" "${heap[$ref]}" "${heap[$last]}"
echo "goroutines: ${gor[$ref]} → ${gor[$last]}"
[ $((gor[last] - gor[ref])) -le 10 ] || verdict=1
if [ $verdict = 0 ]; then echo "no growth"; else echo "GROWTH beyond ${GROWTH_PCT} %"; fi
exit $verdict
