#!/usr/bin/env bash
# Where the proxy's CPU goes, against nginx: each contestant (a8-sidecar, nginx, and any other
# sidecar binaries given in BINS) behind the same two upstreams (the team harness's upstream) on core
# 0, wrk on core 1, and `perf stat` on the contestant for WINDOW seconds in the middle of the load:
# CPU µs per request, context switches, and system calls per request (all, read/recvfrom, write and
# writev, nanosleep and futex: the Go runtime's own threads).
#
#   apt-get install -y --no-install-recommends nginx wrk linux-perf   # once (perf needs root or
#                                                                      # perf_event_paranoid <= 1)
#   bench/proxy/syscalls.sh                          # BODY_SIZE=4096 ROUNDS=3
#   BINS="/tmp/a8-old /tmp/a8-new" bench/proxy/syscalls.sh   # A/B two builds of the sidecar
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared/bench}
BODY_SIZE=${BODY_SIZE:-64}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}   # wrk seconds per measurement (after a 2 s warm-up)
WINDOW=${WINDOW:-3}       # perf seconds, starting 2 s into the load
BASE_PORT=${BASE_PORT:-19180}
for b in wrk nginx perf taskset go curl; do command -v $b >/dev/null || { echo "missing: $b" >&2; exit 1; }; done
[ -d "$SHARED/upstream" ] || { echo "set SHARED to the harness's directory (no upstream/ in $SHARED)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/a8-sidecar" ./cmd/a8-sidecar
(cd "$SHARED/upstream" && go build -o "$tmp/upstream" .)
BINS=${BINS:-$tmp/a8-sidecar}

up1=127.0.0.1:$((BASE_PORT + 1)) up2=127.0.0.1:$((BASE_PORT + 2))
taskset -c 0 "$tmp/upstream" -addr "$up1" -size "$BODY_SIZE" & pids+=($!)
taskset -c 0 "$tmp/upstream" -addr "$up2" -size "$BODY_SIZE" & pids+=($!)
cat >"$tmp/routes.yaml" <<EOF
instances:
- {service_name: svc, endpoint: {type: http, value: "$up1"}, tags: [version=v1]}
- {service_name: svc, endpoint: {type: http, value: "$up2"}, tags: [version=v2]}
rules: []
EOF
mkdir -p "$tmp/nginx/tmp"
ngport=$((BASE_PORT + 10))
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/tmp; proxy_temp_path $tmp/nginx/tmp;
  fastcgi_temp_path $tmp/nginx/tmp; uwsgi_temp_path $tmp/nginx/tmp; scgi_temp_path $tmp/nginx/tmp;
  keepalive_requests 1000000;
  upstream svc { server $up1; server $up2; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$ngport;
    location /svc/ { proxy_pass http://svc/; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF

# ready PORT: waits until the contestant on PORT answers.
ready() {
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$1/svc/hello" && return; sleep 0.1; done
  echo "nothing answers on port $1" >&2
  exit 1
}

# measure NAME PID PORT: one line of figures for the process PID serving on PORT.
measure() {
  local name=$1 pid=$2 port=$3
  local url=http://127.0.0.1:$port/svc/hello
  taskset -c 1 wrk -t2 -c64 -d2s "$url" >/dev/null
  taskset -c 1 wrk -t2 -c64 -d"${DURATION}s" "$url" >"$tmp/wrk.txt" &
  local w=$!
  sleep 2
  perf stat -x, -o "$tmp/perf.txt" -p "$pid" -e task-clock,context-switches,raw_syscalls:sys_enter \
    -e syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_readv \
    -e syscalls:sys_enter_write,syscalls:sys_enter_writev \
    -e syscalls:sys_enter_nanosleep,syscalls:sys_enter_futex -- sleep "$WINDOW" 2>/dev/null
  wait $w
  local rps
  rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
  awk -F, -v name="$name" -v rps="$rps" -v win="$WINDOW" '
    $3 ~ /task-clock/ { ms = $1 }
    $3 == "context-switches" { cs = $1 }
    $3 ~ /raw_syscalls/ { all = $1 }
    $3 ~ /enter_(read|recvfrom|readv)$/ { rd += $1 }
    $3 ~ /enter_(write|writev)$/ { wr += $1 }
    $3 ~ /enter_(nanosleep|futex)$/ { rt += $1 }
    END {
      n = rps * win
      printf "%-24s %8.0f %9.1f %9.3f %9.2f %7.2f %7.2f %9.3f\n", name, rps, ms * 1000 / n, cs / n, all / n, rd / n, wr / n, rt / n
    }' "$tmp/perf.txt"
}

printf "%-24s %8s %9s %9s %9s %7s %7s %9s\n" contestant req/s cpu_us/rq ctxsw/rq sysc/rq reads writes rt_sys/rq
for r in $(seq "$ROUNDS"); do
  for b in $BINS; do
    GOMAXPROCS=1 taskset -c 0 "$b" --proxy --service bench --static_config "$tmp/routes.yaml" \
      --proxy_address 127.0.0.1 --proxy_port $((BASE_PORT + 20)) --admin_port 0 --log_level warn &
    p=$!
    ready $((BASE_PORT + 20))
    measure "$(basename "$b")#$r" $p $((BASE_PORT + 20))
    kill $p; wait $p 2>/dev/null || true
  done
  taskset -c 0 nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' &
  ng=$!
  ready $ngport
  measure "nginx#$r" "$(pgrep -P $ng nginx | head -1)" $ngport
  kill $ng; wait $ng 2>/dev/null || true
done
echo "(per request: CPU of the contestant's process, context switches, system calls; rt_sys: nanosleep + futex)"
