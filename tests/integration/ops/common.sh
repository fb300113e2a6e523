# shellcheck shell=bash
# Shared by the ops tests: assertions, a private temporary directory, and helpers.
set -euo pipefail

OPS_SOURCE=${ESS_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
# shellcheck source=deploy/local/lib.sh
. "$OPS_SOURCE/deploy/local/lib.sh"
ESS_LIB_PREFIX=ops-test
export OPS_ESS=$OPS_SOURCE/deploy/local/ess

fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

# check DESCRIPTION COMMAND...: COMMAND must succeed.
check() {
  local description=$1
  shift
  if "$@"; then
    printf 'ok: %s\n' "$description"
  else
    fail "$description"
  fi
}

skip() {
  printf 'SKIP: %s\n' "$*"
  exit 77
}

# ops_tmpdir: a private directory for this test, passable by the PostgreSQL user.
ops_tmpdir() {
  OPS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ess-ops.XXXXXXXX")
  chmod 755 "$OPS_TMP"
}

# ops_unset_ess_env: a developer's shell may carry a stack's addresses and secrets
# (eval "$(ess env)"); the tests choose their own.
ops_unset_ess_env() {
  local name
  for name in $(compgen -e | grep '^ESS_' || true); do
    case "$name" in
      ESS_SOURCE_DIR | ESS_BUILD_DIR | ESS_TEST_*) ;;
      *) unset "$name" ;;
    esac
  done
}

# ops_stack_env HOME: exports ESS_HOME=HOME and free ports for every address of a stack.
ops_stack_env() {
  local port var
  export ESS_HOME=$1
  ess_free_port port
  export ESS_NATS_URL=nats://127.0.0.1:$port
  ess_free_port port
  export ESS_NATS_MONITOR_PORT=$port
  ess_free_port port
  export ESS_PG_DSN=postgresql://ess@127.0.0.1:$port/ess
  for var in ESS_INGRESS_LISTEN ESS_CONSOLE_LISTEN ESS_CONVERSATION_LISTEN ESS_GEOROUTER_LISTEN \
    ESS_NOTIFIER_LISTEN ESS_AUDIT_LISTEN ESS_EMULATOR_LISTEN; do
    ess_free_port port
    export "$var=127.0.0.1:$port"
  done
}

# ops_pids HOME: "file pid" lines for every pid file of the stack in HOME.
ops_pids() {
  local file
  for file in "$1"/run/*.pid "$1"/run/*.child; do
    [[ -f "$file" ]] || continue
    printf '%s %s\n' "$(basename "$file")" "$(tr -d '\n' <"$file")"
  done | sort
}

# ops_dump_logs HOME: the last lines of every log of a stack, for a failure's post-mortem.
ops_dump_logs() {
  local file
  for file in "$1"/log/*.log; do
    [[ -f "$file" ]] || continue
    printf -- '--- %s\n' "$file" >&2
    tail -n 30 "$file" >&2
  done
}

# ops_leftovers DIR: pids of processes whose command line mentions DIR.
ops_leftovers() {
  pgrep -f -- "$1" || true
}

# ops_fake_service BIN_DIR NAME [MODE]: a stand-in service binary (python3) that answers
# GET /healthz on its ESS_*_LISTEN address (MODE ok), or exits 2 at once like a service
# with a configuration problem (MODE config-error).
ops_fake_service() {
  local file=$1/$2 mode=${3:-ok}
  mkdir -p "$1"
  if [[ "$mode" == config-error ]]; then
    printf '#!/bin/sh\necho "{\\"level\\":\\"error\\",\\"msg\\":\\"configuration\\"}"\nexit 2\n' >"$file"
  else
    cat >"$file" <<'PY'
#!/usr/bin/env python3
# Stand-in ESS service for the ops tests: GET /healthz -> 200 on its listen address.
import http.server, os, signal, sys
name = os.path.basename(sys.argv[0])
var = {"line-emulator": "ESS_EMULATOR_LISTEN"}.get(
    name, name.replace("ess-", "ESS_").upper() + "_LISTEN")
host, port = os.environ[var].rsplit(":", 1)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
http.server.HTTPServer((host, int(port)), Handler).serve_forever()
PY
  fi
  chmod +x "$file"
}

# nats_read_msg FD VAR: reads until the next MSG and stores its payload in VAR; answers
# PINGs; false on -ERR or after 5 s of silence.
nats_read_msg() {
  local fd=$1 line
  while IFS= read -r -t 5 line <&"$fd"; do
    line=${line%$'\r'}
    case "$line" in
      PING) printf 'PONG\r\n' >&"$fd" ;;
      MSG\ *)
        IFS= read -r -t 5 line <&"$fd" || return 1
        printf -v "$2" '%s' "${line%$'\r'}"
        return 0
        ;;
      -ERR*)
        printf '%s\n' "$line" >&2
        return 1
        ;;
    esac
  done
  return 1
}

# nats_js_publish HOST PORT STREAM SUBJECT PAYLOAD: creates a file-stored JetStream stream
# and publishes PAYLOAD (ASCII) to it, speaking the NATS protocol over bash's /dev/tcp, so the
# test needs no client library. True once the server acknowledged the message as stored.
nats_js_publish() {
  local host=$1 port=$2 stream=$3 subject=$4 payload=$5 fd line body reply=""
  exec {fd}<>"/dev/tcp/$host/$port" || return 1
  IFS= read -r -t 5 line <&"$fd" || return 1
  [[ "$line" == INFO* ]] || return 1
  printf 'CONNECT {"verbose":false,"pedantic":false,"lang":"bash","version":"0"}\r\n' >&"$fd"
  printf 'SUB _INBOX.ops 1\r\n' >&"$fd"
  body=$(printf '{"name":"%s","subjects":["%s"],"storage":"file","num_replicas":1}' \
    "$stream" "$subject")
  # shellcheck disable=SC2016 # $JS is NATS's subject prefix, not a shell variable
  printf 'PUB $JS.API.STREAM.CREATE.%s _INBOX.ops %d\r\n%s\r\n' "$stream" "${#body}" "$body" >&"$fd"
  nats_read_msg "$fd" reply || return 1
  if [[ "$reply" == *'"error"'* ]]; then
    printf 'stream create: %s\n' "$reply" >&2
    return 1
  fi
  printf 'PUB %s _INBOX.ops %d\r\n%s\r\n' "$subject" "${#payload}" "$payload" >&"$fd"
  nats_read_msg "$fd" reply || return 1
  exec {fd}>&-
  [[ "$reply" == *'"seq":1'* ]] || {
    printf 'publish ack: %s\n' "$reply" >&2
    return 1
  }
}
