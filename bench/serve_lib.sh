# Sourced by the loopback server scripts (load_test.sh, soak.sh): a scratch folder, a
# `dsv4 serve` child on a free port, and cleanup on exit. Not a script of its own.
#
#   int_in NAME VALUE LO HI       exits 2 unless VALUE is an integer in [LO, HI] (--NAME)
#   work_dir_and_cleanup          sets $work (removed on exit with the server)
#   start_server BIN ARGS...      starts BIN serve --host 127.0.0.1 --port 0 ARGS..., waits
#                                 (60 s at most) until the model is ready; sets $server_pid
#                                 and $url; exits 1 with the server's log on failure

int_in() {
  [[ "$2" =~ ^[0-9]+$ ]] && (( $2 >= $3 && $2 <= $4 )) || {
    echo "error: --$1 must be an integer in [$3, $4], got '$2'" >&2
    exit 2
  }
}

work_dir_and_cleanup() {
  work="$(mktemp -d)"
  server_pid=""
  trap 'stop_server; rm -rf "$work"' EXIT
}

stop_server() {
  if [[ -n "${server_pid:-}" ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

start_server() {
  local bin="$1"
  shift
  "$bin" serve --host 127.0.0.1 --port 0 "$@" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do
    grep -q "^dsv4 serve: model .* ready" "$work/server.log" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
  done
  if ! grep -q "^dsv4 serve: model .* ready" "$work/server.log"; then
    echo "error: the server was not ready after 60 s" >&2
    exit 1
  fi
  url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.log" | head -1)"
}
