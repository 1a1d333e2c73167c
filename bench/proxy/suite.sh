#!/usr/bin/env bash
# The proxy suite: bench/proxy/run.sh (the sidecar beside nginx and haproxy in the team's harness)
# in each of its scenarios, one after another, each with $ROUNDS rounds:
#   plain     64-byte answers, no rules
#   body4k    4 KiB answers
#   body64k   64 KiB answers
#   think1ms  1 ms upstream think time
#   rules     100 destinations with cookie rules, and on svc a cookie rule, a header rule and a
#             50/50 split, all evaluated per request
# Each scenario's last table (the medians) is printed, and the whole output kept in $OUT.
#
#   HARNESS=/path/to/proxy-bench.sh bench/proxy/suite.sh     # ROUNDS=3 SCENARIOS="plain rules"
set -euo pipefail
cd "$(dirname "$0")/../.."
SCENARIOS=${SCENARIOS:-plain body4k body64k think1ms rules}
OUT=${OUT:-$(mktemp -d -t a8-proxy-suite.XXXXXX)}
mkdir -p "$OUT"
for s in $SCENARIOS; do
  case $s in
    plain)    env=() ;;
    body4k)   env=(BODY_SIZE=4096) ;;
    body64k)  env=(BODY_SIZE=65536) ;;
    think1ms) env=(UPSTREAM_DELAY=1ms) ;;
    rules)    env=(RULES=1) ;;
    *) echo "unknown scenario $s (plain body4k body64k think1ms rules)" >&2; exit 2 ;;
  esac
  echo "== $s ${env[*]:-}"
  env "${env[@]}" RESULTS_TSV="$OUT/$s.tsv" bench/proxy/run.sh >"$OUT/$s.out" 2>&1 || {
    echo "$s failed; see $OUT/$s.out" >&2
    tail -20 "$OUT/$s.out" >&2
    exit 1
  }
  sed -n '/^SUMMARY/,$p' "$OUT/$s.out" # the harness's table of medians
done
echo "outputs in $OUT"
