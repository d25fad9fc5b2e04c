#!/bin/sh
# Start or stop a private Docker engine (dockerd) that needs no bridge, no iptables and no registry.
#
#   eval "$(deploy/docker/engine.sh start)"   # prints: export DOCKER_HOST=unix://...
#   docker build --network host -t mmd .      # containers use the host network
#   deploy/docker/engine.sh stop              # stops that dockerd by its pidfile
#
# All of its state lives under MMD_DOCKER_HOME (default /var/tmp/mmd-docker): images and the build
# cache survive a stop, so the next start is fast. Needs root and the docker.io package
# (apt-get install -y --no-install-recommends docker.io).
set -eu

HOME_DIR="${MMD_DOCKER_HOME:-/var/tmp/mmd-docker}"
SOCK="$HOME_DIR/docker.sock"
PIDFILE="$HOME_DIR/dockerd.pid"
LOG="$HOME_DIR/dockerd.log"
DOCKERD="${DOCKERD:-dockerd}"
# /usr/bin/docker from docker.io matches the engine's API version; another client on PATH may not
DOCKER="${DOCKER:-docker}"

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

case "${1:-}" in
start)
    mkdir -p "$HOME_DIR/data" "$HOME_DIR/exec"
    if ! running; then
        rm -f "$SOCK" "$PIDFILE"
        # setsid: the engine outlives this script and is stopped only through its pidfile
        setsid "$DOCKERD" \
            --bridge=none --iptables=false --ip6tables=false \
            --data-root "$HOME_DIR/data" --exec-root "$HOME_DIR/exec" \
            -H "unix://$SOCK" --pidfile "$PIDFILE" \
            >"$LOG" 2>&1 </dev/null &
        i=0
        until DOCKER_HOST="unix://$SOCK" "$DOCKER" version >/dev/null 2>&1; do
            i=$((i + 1))
            if [ "$i" -gt 60 ]; then
                echo "dockerd did not answer within 30 s; its log ($LOG):" >&2
                tail -n 30 "$LOG" >&2
                exit 1
            fi
            sleep 0.5
        done
    fi
    echo "export DOCKER_HOST=unix://$SOCK"
    ;;
stop)
    if running; then
        pid="$(cat "$PIDFILE")"
        kill "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null; do
            i=$((i + 1))
            if [ "$i" -gt 60 ]; then
                echo "dockerd ($pid) did not stop within 30 s; sending SIGKILL" >&2
                kill -9 "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.5
        done
    fi
    rm -f "$PIDFILE"
    # dockerd leaves its default network namespace bind-mounted under the exec root
    if grep -q " $HOME_DIR/exec/netns/default " /proc/mounts 2>/dev/null; then
        umount "$HOME_DIR/exec/netns/default" || true
    fi
    ;;
status)
    if running; then
        echo "running (pid $(cat "$PIDFILE")): export DOCKER_HOST=unix://$SOCK"
    else
        echo "stopped"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
