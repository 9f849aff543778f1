#!/usr/bin/env bash
# Make sure a Docker engine answers, starting `dockerd` by hand where none runs (machines without
# systemd, CI). `start` prints `started` or `already-running`; `stop` ends only a dockerd that
# this script started (its pid is kept in $HYGGE_DOCKERD_DIR). Exit 3 means no engine can run here,
# with the reason and the end of the dockerd log on stderr. `install` installs what the container
# checks use and is missing (Debian: docker.io, docker-compose 1.29, debootstrap).
#
#   deploy/scripts/docker-engine.sh install|start|stop|status
set -uo pipefail

STATE_DIR=${HYGGE_DOCKERD_DIR:-/tmp/hygge-dockerd}
PIDFILE=$STATE_DIR/dockerd.pid
LOG=$STATE_DIR/dockerd.log
WAIT_SECONDS=${HYGGE_DOCKERD_WAIT:-60}

say() { printf 'docker-engine: %s\n' "$*" >&2; }

answers() { timeout 10 docker info >/dev/null 2>&1; }

install_engine() {
  # Debian's docker.io ships dockerd + containerd + runc; docker-compose is Compose 1.29;
  # debootstrap builds the base image where no registry is reachable.
  mkdir -p "$STATE_DIR"
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ "${#missing[@]}" -gt 0 ] || return 0
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    say "missing ${missing[*]}, and apt-get (as root) is not available to install them"
    return 1
  fi
  say "installing ${missing[*]} with apt-get"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } \
    >"$STATE_DIR/apt.log" 2>&1 \
    || { say "apt-get failed, see $STATE_DIR/apt.log"; tail -5 "$STATE_DIR/apt.log" >&2; return 1; }
}

# Try the plain daemon first, then options that avoid the kernel features most often missing in
# nested or locked-down machines (overlayfs, iptables).
ATTEMPTS=(
  ""
  "--storage-driver=vfs"
  "--iptables=false --ip-masq=false"
  "--storage-driver=vfs --iptables=false --ip-masq=false"
)

start() {
  mkdir -p "$STATE_DIR"
  if answers; then echo already-running; return 0; fi
  command -v dockerd >/dev/null 2>&1 || install_engine || return 3
  if [ "$(id -u)" != 0 ]; then say "dockerd must be started as root"; return 3; fi
  local opts
  for opts in "${ATTEMPTS[@]}"; do
    say "starting dockerd ${opts:-(default options)}"
    # shellcheck disable=SC2086
    setsid dockerd --host unix:///var/run/docker.sock $opts >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    local waited=0
    while [ "$waited" -lt "$WAIT_SECONDS" ]; do
      if answers; then
        echo "$opts" >"$STATE_DIR/options"
        say "engine answers after ${waited}s (log: $LOG)"
        echo started
        return 0
      fi
      kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
      sleep 1
      waited=$((waited + 1))
    done
    say "dockerd ${opts:-(default options)} did not answer; last log lines:"
    tail -8 "$LOG" >&2
    stop >/dev/null
    mkdir -p "$STATE_DIR"
  done
  say "no Docker engine can run on this machine (see $LOG)"
  return 3
}

stop() {
  [ -f "$PIDFILE" ] || { echo not-ours; return 0; }
  local pid
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$PIDFILE"
  echo stopped
}

case "${1:-}" in
  install) install_engine ;;
  start) start ;;
  stop) stop ;;
  status) if answers; then echo running; else echo not-running; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
