#!/usr/bin/env bash
# Bounded soak test of `dsv4 serve` over loopback: N clients for M minutes, each cycling
# through six kinds of client: streaming, non-streaming, cancelled mid-stream, leaving a
# non-streaming request, malformed (bad JSON, nesting past the limit, text/plain, a chunked
# body past the limit) and slow (a head trickled past --header-timeout). Reports requests
# served and outcomes by kind, and the server's RSS, threads, open fds, KV bytes in use,
# requests in flight and open connections at the start and at the end. Exits 1 when a client
# got an answer its kind should not get, or when threads, fds, KV, in-flight requests or
# connections did not return to the baseline (RSS is reported, not checked: the allocator
# keeps freed pages).
#
#   bench/soak.sh [--clients 8] [--minutes 1] [--bin build/release/tools/dsv4/dsv4]
#                 [--threads 0]
set -euo pipefail
cd "$(dirname "$0")/.."

clients=8
minutes=1
bin=build/release/tools/dsv4/dsv4
threads=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) clients="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
source bench/serve_lib.sh
int_in clients "$clients" 1 64
int_in minutes "$minutes" 1 120
int_in threads "$threads" 0 256
command -v curl >/dev/null || { echo "error: curl is needed" >&2; exit 2; }
[[ -x "$bin" ]] || { echo "error: $bin not found; build first (scripts/build release)" >&2; exit 2; }

work_dir_and_cleanup
key="soak-$$"
start_server "$bin" --threads "$threads" --api-key "$key" \
  --max-concurrent-requests "$((clients + 4))" --max-body-bytes 256KiB \
  --header-timeout 1 --body-timeout 2 --idle-timeout 2 --kv-budget 256MiB
port="${url##*:}"

# The server's numbers: "rss_kib threads fds kv_used in_flight connections_open".
snapshot() {
  local m rss thr fds
  m="$(curl -s --max-time 10 "$url/metrics")"
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
  thr=$(awk '/^Threads:/ {print $2}' "/proc/$server_pid/status")
  fds=$(ls "/proc/$server_pid/fd" | wc -l)
  echo "$rss $thr $fds" \
    "$(awk '$1 == "dsv4_kv_used_bytes" {print $2}' <<<"$m")" \
    "$(awk '$1 == "dsv4_requests_in_flight" {print $2}' <<<"$m")" \
    "$(awk '$1 == "dsv4_http_connections_open" {print $2}' <<<"$m")"
}

big_chunked="$work/big.json"
head -c 400000 /dev/zero | tr '\0' 'a' >"$big_chunked"
nested="$work/nested.json"
{ printf '{"prompt": '; head -c 100000 /dev/zero | tr '\0' '['; } >"$nested"

# One client action of kind $1; prints "KIND OUTCOME" where OUTCOME is the HTTP status, or
# "gone" for a client that left on purpose.
act() {
  local kind="$1" i="$2" code auth=(-H "Authorization: Bearer $key") json=(-H 'Content-Type: application/json')
  case "$kind" in
    stream)
      code=$(curl -sS -N --max-time 60 "${auth[@]}" "${json[@]}" -o "$work/s.$i" -w '%{http_code}' \
        -d "{\"prompt\": \"soak $i\", \"max_tokens\": 16, \"stream\": true}" "$url/v1/completions") || code=000
      grep -q '^data: \[DONE\]' "$work/s.$i" 2>/dev/null || [[ "$code" != 200 ]] || code=truncated ;;
    plain)
      code=$(curl -sS --max-time 60 "${auth[@]}" "${json[@]}" -o /dev/null -w '%{http_code}' \
        -d "{\"messages\": [{\"role\": \"user\", \"content\": \"soak $i\"}], \"max_tokens\": 16}" \
        "$url/v1/chat/completions") || code=000 ;;
    cancel|leave)
      local stream=false; [[ "$kind" == cancel ]] && stream=true
      curl -sS -N --max-time 0.5 "${auth[@]}" "${json[@]}" -o /dev/null \
        -d "{\"prompt\": \"long $i\", \"max_tokens\": 4000, \"ignore_eos\": true, \"stream\": $stream}" \
        "$url/v1/completions" 2>/dev/null && code=finished || code=gone ;;
    malformed)
      case $(( ${i##*.} % 4 )) in
        0) code=$(curl -sS --max-time 10 "${auth[@]}" "${json[@]}" -o /dev/null -w '%{http_code}' \
             -d '{"prompt": ' "$url/v1/completions") ;;
        1) code=$(curl -sS --max-time 10 "${auth[@]}" "${json[@]}" -o /dev/null -w '%{http_code}' \
             --data-binary "@$nested" "$url/v1/completions") ;;
        2) code=$(curl -sS --max-time 10 "${auth[@]}" -H 'Content-Type: text/plain' -o /dev/null \
             -w '%{http_code}' -d '{"prompt": "x"}' "$url/v1/completions") ;;
        3) code=$(curl -sS --max-time 10 "${auth[@]}" "${json[@]}" -H 'Transfer-Encoding: chunked' \
             -o /dev/null -w '%{http_code}' --data-binary "@$big_chunked" "$url/v1/completions") ;;
      esac || code=000 ;;
    slow)
      # Half a head, then a byte every 0.4 s: the header deadline (1 s) ends it with 408.
      code=000
      if exec {fd}<>"/dev/tcp/127.0.0.1/$port"; then
        printf 'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' >&"$fd"
        for _ in 1 2 3 4 5 6; do printf 'a' >&"$fd" 2>/dev/null || break; sleep 0.4; done
        code=$(timeout 5 head -c 12 <&"$fd" 2>/dev/null | awk '{print $2}')
        exec {fd}>&-
      fi ;;
  esac
  echo "$kind ${code:-000}"
}
export -f act
export url port key work nested big_chunked

# The outcomes each kind may have (429: all generation slots taken, a fair refusal).
expected() {
  case "$1" in
    stream|plain) [[ "$2" == 200 || "$2" == 429 ]] ;;
    cancel|leave) [[ "$2" == gone || "$2" == finished ]] ;;
    malformed) [[ "$2" =~ ^(400|413|415)$ ]] ;;
    slow) [[ "$2" == 408 ]] ;;
  esac
}

curl -s --max-time 60 -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"prompt": "warm up", "max_tokens": 4}' "$url/v1/completions" >/dev/null
read -r rss0 thr0 fd0 kv0 fl0 conn0 <<<"$(snapshot)"

kinds=(stream plain cancel leave malformed slow)
end=$(( $(date +%s) + minutes * 60 ))
for c in $(seq "$clients"); do
  (
    n=0
    while (( $(date +%s) < end )); do
      act "${kinds[$(( (c + n) % 6 ))]}" "$c.$n"
      n=$((n + 1))
    done
  ) >"$work/results.$c" &
done
wait $(jobs -p | grep -v "^$server_pid$") 2>/dev/null || true

# Settle: cancelled requests end, idle connections pass their idle timeout.
for _ in $(seq 100); do
  read -r _ _ _ kv fl _ <<<"$(snapshot)"
  [[ "$kv" == 0 && "$fl" == 0 ]] && break
  sleep 0.1
done
sleep 3
read -r rss1 thr1 fd1 kv1 fl1 conn1 <<<"$(snapshot)"

cat "$work"/results.* >"$work/results"
total=$(wc -l <"$work/results")
bad=0
echo "dsv4 soak: $clients clients for $minutes min on $url: $total client actions"
printf '%-10s %7s  %s\n' kind actions outcomes
for k in "${kinds[@]}"; do
  outcomes=$(awk -v k="$k" '$1 == k {print $2}' "$work/results" | sort | uniq -c |
             awk '{printf "%s x%s  ", $2, $1}')
  n=$(awk -v k="$k" '$1 == k' "$work/results" | wc -l)
  printf '%-10s %7s  %s\n' "$k" "$n" "$outcomes"
  while read -r _ o; do
    expected "$k" "$o" || { bad=$((bad + 1)); echo "  unexpected for $k: $o"; }
  done < <(awk -v k="$k" '$1 == k' "$work/results")
done
printf '%-22s %12s %12s\n' "server" start end
printf '%-22s %12s %12s\n' "RSS (KiB)" "$rss0" "$rss1" "threads" "$thr0" "$thr1" \
  "open fds" "$fd0" "$fd1" "KV used (bytes)" "$kv0" "$kv1" "requests in flight" "$fl0" "$fl1" \
  "connections open" "$conn0" "$conn1"
leak=0
[[ "$thr1" == "$thr0" ]] || { echo "threads did not return to the baseline"; leak=1; }
[[ "$fd1" == "$fd0" ]] || { echo "open fds did not return to the baseline"; leak=1; }
[[ "$kv1" == 0 && "$fl1" == 0 ]] || { echo "KV or in-flight requests did not return to 0"; leak=1; }
[[ "$conn1" == "$conn0" ]] || { echo "open connections did not return to the baseline"; leak=1; }
echo "unexpected outcomes: $bad; resources back to baseline: $([[ $leak == 0 ]] && echo yes || echo no)"
[[ "$bad" == 0 && "$leak" == 0 ]]
