#!/usr/bin/env bash
# Bounded load test of `dsv4 serve` over loopback: N greedy completions, C at a time, through
# curl; reports requests/s, generated tokens/s, client latency percentiles, and the server's
# mean TTFT/TPOT (from /metrics before and after). Starts its own server on a free port
# unless --url names a running one (loopback addresses only).
#
#   bench/load_test.sh [--requests 64] [--concurrency 8] [--max-tokens 16] [--stream]
#                      [--bin build/release/tools/dsv4/dsv4] [--url http://127.0.0.1:8080]
#                      [--api-key KEY] [--threads 0]
set -euo pipefail
cd "$(dirname "$0")/.."

requests=64
concurrency=8
max_tokens=16
stream=false
bin=build/release/tools/dsv4/dsv4
url=""
api_key=""
threads=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --requests) requests="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --max-tokens) max_tokens="$2"; shift 2 ;;
    --stream) stream=true; shift ;;
    --bin) bin="$2"; shift 2 ;;
    --url) url="$2"; shift 2 ;;
    --api-key) api_key="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# Bounds: this is a benchmark for one machine, not a load generator.
source bench/serve_lib.sh
int_in requests "$requests" 1 10000
int_in concurrency "$concurrency" 1 256
int_in max-tokens "$max_tokens" 1 4096
command -v curl >/dev/null || { echo "error: curl is needed" >&2; exit 2; }

work_dir_and_cleanup
if [[ -z "$url" ]]; then
  if [[ ! -x "$bin" ]]; then
    echo "error: $bin not found; build first (scripts/build release)" >&2
    exit 2
  fi
  start_server "$bin" --threads "$threads" --max-concurrent-requests "$((concurrency + 8))"
fi
case "$url" in
  http://127.0.0.1:*|http://localhost:*|http://\[::1\]:*) ;;
  *)
    echo "error: --url must be a loopback address (http://127.0.0.1:PORT), got '$url'" >&2
    exit 2
    ;;
esac

# One request: prints "HTTP_CODE SECONDS COMPLETION_TOKENS".
one() {
  local i="$1" body out tokens auth=()
  [[ -n "$api_key" ]] && auth=(-H "Authorization: Bearer $api_key")
  body="{\"prompt\": \"Request $i: write about the number $((i * 7)).\","
  body+=" \"max_tokens\": $max_tokens, \"temperature\": 0, \"stream\": $stream"
  [[ "$stream" == true ]] && body+=", \"stream_options\": {\"include_usage\": true}"
  body+="}"
  out="$(curl -sS --max-time 120 "${auth[@]}" -H 'Content-Type: application/json' -d "$body" \
         -w $'\n%{http_code} %{time_total}' "$url/v1/completions" 2>/dev/null)" || {
    echo "000 0 0"; return 0; }
  tokens="$(grep -o '"completion_tokens":[0-9]*' <<<"$out" | tail -1 | cut -d: -f2)"
  echo "${out##*$'\n'} ${tokens:-0}"
}
export -f one
export url max_tokens stream api_key

metric() { grep -E "^$1 " <<<"$2" | awk '{print $2}' | head -1; }
before="$(curl -s --max-time 10 "$url/metrics")"
start=$(date +%s.%N)
seq "$requests" | timeout 3600 xargs -P "$concurrency" -I{} bash -c 'one {}' >"$work/results"
end=$(date +%s.%N)
after="$(curl -s --max-time 10 "$url/metrics")"

ok=$(awk '$1 == 200' "$work/results" | wc -l)
failed=$((requests - ok))
wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
tokens=$(awk '$1 == 200 {s += $3} END {print s + 0}' "$work/results")
awk '$1 == 200 {print $2}' "$work/results" | sort -n >"$work/lat"
# The nearest-rank percentile of the sorted latencies.
pct() {
  awk -v p="$1" '{v[NR] = $1} END {
    if (NR == 0) { print "-"; exit }
    i = int(p * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
    printf "%.3f", v[i] }' "$work/lat"
}
delta() { awk -v a="$(metric "$1" "$before")" -v b="$(metric "$1" "$after")" \
  'BEGIN {print (b == "" ? 0 : b) - (a == "" ? 0 : a)}'; }
ttft_n=$(delta dsv4_time_to_first_token_seconds_count)
tpot_n=$(delta dsv4_time_per_output_token_seconds_count)

echo "dsv4 load test: $url, $requests requests ($ok ok, $failed failed)," \
     "concurrency $concurrency, max_tokens $max_tokens, stream $stream"
awk -v r="$ok" -v t="$tokens" -v w="$wall" \
  'BEGIN {printf "throughput: %.2f requests/s, %.1f generated tokens/s over %.2f s\n",
          r / w, t / w, w}'
echo "latency (s): p50 $(pct 0.5)  p90 $(pct 0.9)  p99 $(pct 0.99)  max $(pct 1)"
awk -v ts="$(delta dsv4_time_to_first_token_seconds_sum)" -v tn="$ttft_n" \
    -v ps="$(delta dsv4_time_per_output_token_seconds_sum)" -v pn="$tpot_n" \
  'BEGIN {printf "server means (/metrics): TTFT %.3f s, TPOT %.1f ms\n",
          (tn > 0 ? ts / tn : 0), (pn > 0 ? 1e3 * ps / pn : 0)}'
[[ "$ok" -gt 0 ]]
