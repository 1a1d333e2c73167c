#!/usr/bin/env bash
# Runs the sidecar proxy as the extra contestant of the team's proxy benchmark harness (nginx and
# haproxy as reverse proxies to the same two upstreams, same load, same cores), with a routing table
# read from a static file. Knobs of the harness (ROUNDS, DURATION, RATE, BODY_SIZE, UPSTREAM_DELAY,
# PIN, ...) pass through.
#
#   apt-get install -y --no-install-recommends nginx haproxy wrk    # once
#   HARNESS=/path/to/proxy-bench.sh bench/proxy/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
HARNESS=${HARNESS:-../shared/bench/proxy-bench.sh}
[ -x "$HARNESS" ] || { echo "set HARNESS to the proxy-bench.sh harness (not found at $HARNESS)" >&2; exit 1; }
# The sidecar binary, a8-sidecar (what runs beside every instance); BINARY=a8 measures `a8 sidecar`.
BINARY=${BINARY:-a8-sidecar}
bin=$(mktemp -d)/$BINARY
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" "./cmd/$BINARY"
export A8_BENCH_BIN=$bin
[ "$BINARY" = a8 ] && export A8_BENCH_SUB=sidecar || export A8_BENCH_SUB=
# RULES=1 adds a rule set of 100 destinations with header rules and a weighted split on svc, so that
# the cost of rules shows.
export A8_BENCH_RULES=${RULES:-0}
EXTRA_NAME=${EXTRA_NAME:-a8} EXTRA_CMD='
{
  echo "instances:"
  echo "- {service_name: svc, endpoint: {type: http, value: \"$UPSTREAM1\"}, tags: [version=v1]}"
  echo "- {service_name: svc, endpoint: {type: http, value: \"$UPSTREAM2\"}, tags: [version=v2]}"
  echo "rules:"
  if [ "$A8_BENCH_RULES" = 1 ]; then
    for i in $(seq 1 100); do
      echo "- {destination: other$i, priority: 2, match: {headers: {Cookie: \"^(.*?;)?(user=u$i)(;.*)?\$\"}}, route: {backends: [{tags: [version=v2]}]}}"
      echo "- {destination: other$i, priority: 1, route: {backends: [{tags: [version=v1]}]}}"
    done
    echo "- {destination: svc, priority: 3, match: {headers: {Cookie: \"^(.*?;)?(user=jason)(;.*)?\$\"}}, route: {backends: [{tags: [version=v2]}]}}"
    echo "- {destination: svc, priority: 2, match: {headers: {X-Canary: \"^yes\$\"}}, route: {backends: [{tags: [version=v2]}]}}"
    echo "- {destination: svc, priority: 1, route: {backends: [{tags: [version=v1], weight: 0.5}, {tags: [version=v2]}]}}"
  else
    echo "  []"
  fi
} > "$BENCH_TMP/routes.yaml"
exec "$A8_BENCH_BIN" $A8_BENCH_SUB --proxy --service bench --static_config "$BENCH_TMP/routes.yaml" \
  --proxy_address 127.0.0.1 --proxy_port "$LISTEN_PORT" --admin_port 0 --log_level warn' \
  exec "$HARNESS"
