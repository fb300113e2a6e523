# shellcheck shell=bash
# deploy/local/lib.sh: how ESS starts, checks and stops its servers on one machine.
#
# Sourced (never executed) by deploy/local/ess (the local stack), tests/run (the throwaway
# servers of the tests) and the Docker builder stage (ess_cmake_*), so a test stack and a
# developer's stack are started by the same code. Only functions and constants live here;
# sourcing has no side effect beyond defining them.
#
# Rules every function keeps:
#   - waits are bounded polling loops (ess_wait_until), never fixed sleeps;
#   - a process is signalled only after its command line proves it is one we started
#     (ess_proc_has_arg with a path under the caller's directory), so a stale pid file whose
#     pid was reused can never make us kill someone else's process;
#   - PostgreSQL never runs as root (it refuses to): as root, every PostgreSQL command runs as
#     $ESS_PG_OS_USER (default postgres) through runuser.

ESS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ESS_SOURCE_DIR=$(cd "$ESS_LIB_DIR/../.." && pwd)
ESS_PG_BIN_DIR=${ESS_PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
ESS_PG_OS_USER=${ESS_PG_OS_USER:-postgres}
# Ports handed out by ess_free_port in this shell but perhaps not bound yet.
ESS_LIB_RESERVED_PORTS=" "

ess_say() { printf '%s: %s\n' "${ESS_LIB_PREFIX:-ess}" "$*" >&2; }
ess_die() {
  ess_say "error: $*"
  exit 1
}

# ---------------------------------------------------------------------------------------
# Paths and processes

# ess_check_path PATH: dies unless PATH is absolute and made of [A-Za-z0-9_./-] only. Paths
# go unquoted into nats-server's configuration (environment references are parsed as bare
# words) and into PostgreSQL settings, where spaces, quotes or '#' would change the meaning.
ess_check_path() {
  [[ "$1" =~ ^/[A-Za-z0-9_./-]*$ && "$1" != *//* ]] ||
    ess_die "path '$1' must be absolute and use only letters, digits and _ . / -"
}

# ess_proc_has_arg PID ARG: true when PID is a live process with ARG as one of its
# command-line arguments (exactly).
ess_proc_has_arg() {
  local pid=$1 want=$2 arg
  local -a args=()
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || return 1
  for arg in "${args[@]}"; do
    [[ "$arg" == "$want" ]] && return 0
  done
  return 1
}

# ess_proc_gone PID: true when PID no longer runs (absent, or a zombie awaiting its parent).
ess_proc_gone() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  [[ "${stat%% *}" == Z ]]
}

# ess_read_pid FILE: prints the pid in FILE; false when FILE is missing or holds no pid.
ess_read_pid() {
  local pid=""
  [[ -r "$1" ]] || return 1
  read -r pid <"$1" || true
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  printf '%s\n' "$pid"
}

# ess_wait_until SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds (true) or
# SECONDS have passed (false).
ess_wait_until() {
  local timeout=$1 deadline
  shift
  deadline=$((SECONDS + timeout))
  while true; do
    if "$@"; then return 0; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# ess_stop_process PID ARG TIMEOUT SIGNAL...: stops PID if (and only if) its command line
# has ARG. Sends each SIGNAL in turn, waiting up to TIMEOUT seconds after each for the
# process to end, then SIGKILL. True when the process is gone.
ess_stop_process() {
  local pid=$1 arg=$2 timeout=$3 signal
  shift 3
  ess_proc_has_arg "$pid" "$arg" || return 0
  for signal in "$@" KILL; do
    kill -s "$signal" "$pid" 2>/dev/null || return 0
    if ess_wait_until "$timeout" ess_proc_gone "$pid"; then return 0; fi
    [[ "$signal" == KILL ]] || ess_say "pid $pid ignored SIG$signal for ${timeout}s"
  done
  ess_say "warning: pid $pid survived SIGKILL"
  return 1
}

# ---------------------------------------------------------------------------------------
# Ports

# ess_port_listening PORT: true when a TCP socket listens on PORT (any address, IPv4/IPv6).
# Reads /proc/net/tcp* so it needs no ss/netstat.
ess_port_listening() {
  local hex file
  printf -v hex ':%04X' "$1"
  for file in /proc/net/tcp /proc/net/tcp6; do
    [[ -r "$file" ]] || continue
    # Columns: sl local_address rem_address st ...; st 0A is LISTEN.
    if awk -v want="$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == want {
           found = 1 } END { exit !found }' "$file"; then
      return 0
    fi
  done
  return 1
}

# ess_pid_listens PID PORT: true when process PID itself holds a socket listening on TCP
# PORT (any address). Tells our own server from another process that took the port first
# and might even answer the same health path. Matches the LISTEN socket's inode in
# /proc/net/tcp* with PID's open files; needs to see PID's fds (ours, or root).
ess_pid_listens() {
  local pid=$1 hex file inode
  printf -v hex ':%04X' "$2"
  local -a inodes=()
  for file in /proc/net/tcp /proc/net/tcp6; do
    [[ -r "$file" ]] || continue
    # Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode.
    while read -r inode; do
      inodes+=("$inode")
    done < <(awk -v want="$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == want {
               print $10 }' "$file")
  done
  ((${#inodes[@]} > 0)) || return 1
  for inode in "${inodes[@]}"; do
    # find -lname compares each fd's link text: socket:[<inode>].
    if [[ -n "$(find "/proc/$pid/fd" -maxdepth 1 -lname "socket:\[$inode\]" -print -quit \
      2>/dev/null)" ]]; then
      return 0
    fi
  done
  return 1
}

# ess_free_port VAR: sets VAR to a TCP port nothing listens on and that this shell has not
# handed out before. Ports come from 20000-32767, below the kernel's ephemeral range, so
# no outgoing connection can be holding one. Another process may still bind it first: the
# server then fails to start and the caller may retry with a new port.
ess_free_port() {
  # Locals carry a private prefix: printf -v below must reach the caller's variable, which a
  # local of the same name here would hide.
  local ess__attempt ess__port
  for ((ess__attempt = 0; ess__attempt < 500; ess__attempt++)); do
    ess__port=$((20000 + RANDOM % 12768))
    [[ "$ESS_LIB_RESERVED_PORTS" == *" $ess__port "* ]] && continue
    ess_port_listening "$ess__port" && continue
    ESS_LIB_RESERVED_PORTS+="$ess__port "
    printf -v "$1" '%s' "$ess__port"
    return 0
  done
  ess_die "found no free TCP port"
}

# ess_http_ok URL: true when GET URL answers 2xx within 2 seconds.
ess_http_ok() {
  curl -fsS -m 2 -o /dev/null "$1" 2>/dev/null
}

# ---------------------------------------------------------------------------------------
# Secrets

# ess_random_hex BYTES: prints BYTES random bytes as lower-case hex.
ess_random_hex() {
  od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# ess_random_base64 BYTES: prints BYTES random bytes in standard base64.
ess_random_base64() {
  head -c "$1" /dev/urandom | base64 -w0
}

# ess_nats_key_valid KEY: the store key goes into the configuration as a bare word, where
# a leading digit would make it a number and '#' or '//' a comment: a letter, then 31 or
# more letters, digits, '_' or '-'.
ess_nats_key_valid() {
  [[ "$1" =~ ^[A-Za-z][A-Za-z0-9_-]{31,}$ ]]
}

# ess_new_nats_key: prints a fresh store key (256 random bits, valid for the rule above).
ess_new_nats_key() {
  printf 'k%s\n' "$(ess_random_hex 32)"
}

# ---------------------------------------------------------------------------------------
# NATS

# ess_nats_start DIR HOST PORT MONITOR_PORT STORE_KEY LOG PID_FILE
#   Starts nats-server detached (own session) with JetStream: configuration DIR/nats.conf
#   (copied from deploy/nats/ess.conf), file store under DIR/store encrypted at rest with
#   STORE_KEY (ChaCha20-Poly1305), output appended to LOG, pid written by the server to
#   PID_FILE. Returns at once; follow with ess_nats_wait.
ess_nats_start() {
  local dir=$1 host=$2 port=$3 monitor_port=$4 key=$5 log=$6 pid_file=$7
  ess_check_path "$dir"
  ess_check_path "$pid_file"
  ess_nats_key_valid "$key" ||
    ess_die "ESS_NATS_STORE_KEY must be a letter then 31+ letters, digits, '_' or '-'"
  mkdir -p "$dir/store"
  install -m 644 "$ESS_SOURCE_DIR/deploy/nats/ess.conf" "$dir/nats.conf"
  rm -f "$pid_file"
  # The key reaches the server through its environment only, never a file on disk.
  ESS_NATS_HOST=$host ESS_NATS_PORT=$port ESS_NATS_MONITOR_PORT=$monitor_port \
    ESS_NATS_PID_FILE=$pid_file ESS_NATS_STORE_DIR=$dir/store ESS_NATS_STORE_KEY=$key \
    setsid env --default-signal=INT,QUIT nats-server -c "$dir/nats.conf" \
    </dev/null >>"$log" 2>&1 9>&- &
  # The server writes the same pid itself once running; written now too, so a server that
  # dies at start (e.g. its port is taken) is noticed at once by ess_nats_wait.
  printf '%s\n' "$!" >"$pid_file"
}

# ess_nats_ready HOST MONITOR_PORT: true when the server answers and JetStream is enabled.
ess_nats_ready() {
  ess_http_ok "http://$1:$2/healthz?js-enabled-only=true"
}

# ess_nats_pid DIR PID_FILE: prints the pid of the nats-server using DIR/nats.conf.
ess_nats_pid() {
  local pid
  pid=$(ess_read_pid "$2") || return 1
  ess_proc_has_arg "$pid" "$1/nats.conf" || return 1
  printf '%s\n' "$pid"
}

# ess_nats_wait DIR PID_FILE HOST MONITOR_PORT TIMEOUT: waits until the server started by
# ess_nats_start is ready. False (with the log's tail left to the caller) when it died or
# did not get ready in TIMEOUT seconds.
ess_nats_wait() {
  local dir=$1 pid_file=$2 host=$3 monitor_port=$4 timeout=$5
  ess_wait_until "$timeout" ess__nats_ready_or_gone "$pid_file" "$host" "$monitor_port" ||
    return 1
  ess_nats_ready "$host" "$monitor_port"
}

# ess__nats_ready_or_gone PID_FILE HOST MONITOR_PORT: ready, or the server wrote its pid
# file and ended (e.g. its port was taken): either way there is nothing more to wait for.
ess__nats_ready_or_gone() {
  local pid
  ess_nats_ready "$2" "$3" && return 0
  pid=$(ess_read_pid "$1") || return 1
  ess_proc_gone "$pid"
}

# ess_nats_stop DIR PID_FILE TIMEOUT: SIGTERM (nats flushes and exits), then SIGKILL.
ess_nats_stop() {
  local pid
  pid=$(ess_nats_pid "$1" "$2") || return 0
  ess_stop_process "$pid" "$1/nats.conf" "$3" TERM
}

# ---------------------------------------------------------------------------------------
# PostgreSQL 15

# ess_as_pg_user COMMAND...: runs COMMAND as the cluster's owner ($ESS_PG_OS_USER when we
# are root, ourselves otherwise), from / so an unreadable working directory does not matter.
ess_as_pg_user() {
  if ((EUID == 0)); then
    (cd / && runuser -u "$ESS_PG_OS_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

# ess_pg_init DIR LOG [initdb options...]
#   Creates a cluster in DIR/data (superuser "postgres", UTF-8, C.UTF-8 locale) unless one
#   exists; DIR/socket is its Unix socket directory (mode 700: only the cluster's OS user,
#   and root, can use the trusted local socket). DIR is owned by the cluster's OS user.
ess_pg_init() {
  local dir=$1 log=$2
  shift 2
  ess_check_path "$dir"
  if [[ -s "$dir/data/PG_VERSION" ]]; then return 0; fi
  if ((EUID == 0)); then
    id -u "$ESS_PG_OS_USER" >/dev/null 2>&1 ||
      ess_die "user $ESS_PG_OS_USER is missing (it comes with postgresql-15: deploy/install-deps)"
    install -d -m 700 -o "$ESS_PG_OS_USER" -g "$(id -gn "$ESS_PG_OS_USER")" "$dir" "$dir/socket"
    touch "$log"
    chown "$ESS_PG_OS_USER" "$log"
    ess_as_pg_user test -w "$dir" ||
      ess_die "PostgreSQL runs as user $ESS_PG_OS_USER, who cannot reach $dir: choose a" \
        "directory whose parents all let others pass (o+x), e.g. ESS_HOME=/var/tmp/ess"
  else
    install -d -m 700 "$dir" "$dir/socket"
  fi
  ess_as_pg_user "$ESS_PG_BIN_DIR/initdb" -D "$dir/data" -U postgres -A trust \
    --encoding=UTF8 --locale=C.UTF-8 --no-instructions "$@" >>"$log" 2>&1 ||
    return 1
  # Our settings live in one file of their own, rewritten at every start.
  printf "\ninclude_if_exists = 'ess.conf'\n" |
    ess_as_pg_user tee -a "$dir/data/postgresql.conf" >/dev/null
}

# ess_pg_start DIR HOST PORT LOG HBA_RULES [SETTING=VALUE...]
#   Starts the cluster of DIR listening on HOST:PORT (TCP) and DIR/socket, detached, with
#   pg_hba.conf = "local all all trust" + HBA_RULES (newline-separated lines) and the given
#   extra settings; waits (bounded by pg_ctl -t) until it accepts connections.
ess_pg_start() {
  local dir=$1 host=$2 port=$3 log=$4 hba_rules=$5 setting
  shift 5
  if ((EUID == 0)); then
    touch "$log"
    chown "$ESS_PG_OS_USER" "$log"
  fi
  {
    # The report path commits synchronously: an acknowledged commit survives the kill of
    # any process (DESIGN.md §2). Stated here so no inherited default can change it.
    printf "synchronous_commit = on\n"
    printf "listen_addresses = '%s'\nport = %s\nunix_socket_directories = '%s'\n" \
      "$host" "$port" "$dir/socket"
    for setting in "$@"; do
      printf '%s = %s\n' "${setting%%=*}" "${setting#*=}"
    done
  } | ess_as_pg_user tee "$dir/data/ess.conf" >/dev/null
  {
    # The socket directory is private to the cluster's OS user: trust there is safe.
    printf 'local all all trust\n'
    printf '%s\n' "$hba_rules"
  } | ess_as_pg_user tee "$dir/data/pg_hba.conf" >/dev/null
  # setsid: the server leaves our session, so a Ctrl-C in the terminal that ran us (SIGINT =
  # PostgreSQL's fast shutdown) cannot reach it; it stops when we ask.
  ess_as_pg_user setsid "$ESS_PG_BIN_DIR/pg_ctl" -D "$dir/data" -l "$log" -w -t 60 -s start \
    </dev/null >&2 9>&-
}

# ess_pg_pid DIR: prints the postmaster's pid of the cluster in DIR.
ess_pg_pid() {
  local pid
  pid=$(ess_read_pid "$1/data/postmaster.pid") || return 1
  ess_proc_has_arg "$pid" "$1/data" || return 1
  printf '%s\n' "$pid"
}

# ess_pg_ready HOST PORT [USER [DATABASE]]: true when the server accepts connections. HOST
# may be the socket directory. USER and DATABASE (default postgres) should be ones that
# pg_hba.conf admits, or every probe leaves a FATAL line in the server's log.
ess_pg_ready() {
  "$ESS_PG_BIN_DIR/pg_isready" -q -h "$1" -p "$2" -U "${3:-postgres}" -d "${4:-postgres}" \
    -t 2 >/dev/null 2>&1
}

# ess_pg_admin DIR PORT [psql options...]: psql as superuser over the private socket,
# stopping at the first error; the SQL comes from the options (-c) or stdin.
ess_pg_admin() {
  local dir=$1 port=$2
  shift 2
  ess_as_pg_user "$ESS_PG_BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/socket" -p "$port" \
    -U postgres -d postgres "$@"
}

# ess_pg_admin_dsn DIR PORT DATABASE: a libpq connection string (key=value) for the superuser
# over the private socket, for a tool that needs it (essctl db login-role). DIR passed
# ess_check_path, so it needs no quoting.
ess_pg_admin_dsn() {
  printf 'host=%s port=%s dbname=%s user=postgres\n' "$1/socket" "$2" "$3"
}

# ess_pg_ensure_role_db DIR PORT ROLE PASSWORD DATABASE [SUPERUSER]
#   Creates the login ROLE (password PASSWORD, none when empty; superuser when the sixth
#   argument is "superuser") and DATABASE owned by it, when missing. Idempotent.
ess_pg_ensure_role_db() {
  local dir=$1 port=$2 role=$3 password=$4 database=$5 superuser=${6:-}
  local attributes=LOGIN
  [[ "$superuser" == superuser ]] && attributes="LOGIN SUPERUSER"
  # psql variables (:'x' literal, :"x" identifier) quote the values; they are substituted
  # in SQL read from stdin, not in -c.
  ess_pg_admin "$dir" "$port" -v role="$role" -v password="$password" -v database="$database" \
    -v attributes="$attributes" <<'SQL'
SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I %s PASSWORD %L', :'role', :'attributes', NULLIF(:'password', ''))
\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'database') \gexec
SQL
}

# ess_pg_stop DIR TIMEOUT: fast shutdown (SIGINT: disconnects clients, checkpoints), then
# immediate (SIGQUIT), then SIGKILL — each after TIMEOUT seconds.
ess_pg_stop() {
  local pid
  pid=$(ess_pg_pid "$1") || return 0
  ess_stop_process "$pid" "$1/data" "$2" INT QUIT
}

# ---------------------------------------------------------------------------------------
# Build (also used by the Docker builder stage: deploy/docker/Dockerfile)

# ess_cmake_configure BUILD_DIR KIND [cmake options...]
#   KIND release:  RelWithDebInfo, no sanitizers, no test binaries, no failpoints (the
#                  local stack on a fresh build directory, the Docker images)
#   KIND sanitize: Debug with ASan+UBSan, the tests and their failpoints (tests/run)
#   KIND fuzz:     clang-14 with libFuzzer (tests/run's fuzz step; BUILD_DIR of its own)
# Every option a kind depends on is given explicitly: CMake keeps cached values, and one
# build directory may be configured by several kinds in turn.
ess_cmake_configure() {
  local build_dir=$1 kind=$2
  shift 2
  local -a options=(-S "$ESS_SOURCE_DIR" -B "$build_dir")
  case "$kind" in
    release) options+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DESS_SANITIZE=OFF -DESS_FUZZ=OFF
      -DESS_TESTS=OFF -DESS_FAILPOINTS=OFF) ;;
    sanitize) options+=(-DCMAKE_BUILD_TYPE=Debug -DESS_SANITIZE=ON -DESS_FUZZ=OFF
      -DESS_TESTS=ON -DESS_FAILPOINTS=ON) ;;
    fuzz) options+=(-DCMAKE_BUILD_TYPE=Debug -DESS_SANITIZE=OFF -DESS_FUZZ=ON -DESS_TESTS=ON
      -DESS_FAILPOINTS=ON -DCMAKE_C_COMPILER=clang-14) ;;
    *) ess_die "ess_cmake_configure: unknown kind '$kind'" ;;
  esac
  cmake "${options[@]}" "$@"
}

# ess_cmake_build BUILD_DIR [cmake --build options...]: builds (all targets by default)
# with one job per core.
ess_cmake_build() {
  local build_dir=$1
  shift
  cmake --build "$build_dir" -j "$(nproc)" "$@"
}
