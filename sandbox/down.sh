#!/bin/bash
# Tear the sandbox down: host containers, their /var/lib/docker volumes, the
# network; stop dockerd only if sandbox/up.sh started it (recorded pid).
# Images and the state dir's keys and wheel cache stay (a later up.sh is
# quick) unless --purge, which removes the sandbox images and the state dir.
set -euo pipefail
# shellcheck source=sandbox/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PURGE=0
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done

if command -v docker >/dev/null && docker_up; then
  containers=$(docker ps -a --filter label=org.layra.sandbox=host --format '{{.Names}}')
  if [ -n "$containers" ]; then
    # shellcheck disable=SC2086 # names (no spaces) split on purpose, one word each
    log "removing $(printf '%s ' $containers)"
    # shellcheck disable=SC2086 # names (no spaces) split on purpose, one word each
    docker rm -f $containers >/dev/null
  fi
  volumes=$(docker volume ls -q | grep -E '^layra-sandbox-[0-9]+-docker$' || true)
  if [ -n "$volumes" ]; then
    # shellcheck disable=SC2086 # names (no spaces) split on purpose, one word each
    log "removing volumes $(printf '%s ' $volumes)"
    # shellcheck disable=SC2086 # names (no spaces) split on purpose, one word each
    docker volume rm $volumes >/dev/null
  fi
  if docker network inspect "$NETWORK" >/dev/null 2>&1; then
    log "removing network $NETWORK"
    docker network rm "$NETWORK" >/dev/null
  fi
  if [ "$PURGE" = 1 ]; then
    imgs=$(docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^(layra-sandbox/|local/debian:bookworm$)' || true)
    if [ -n "$imgs" ]; then
      # shellcheck disable=SC2086 # names (no spaces) split on purpose, one word each
      log "removing images $(printf '%s ' $imgs)"
      # shellcheck disable=SC2086 # names (no spaces) split on purpose, one word each
      docker image rm -f $imgs >/dev/null
    fi
    docker image prune -f >/dev/null
  fi
fi
rm -f "$STATE/hosts.json" "$STATE/known_hosts" "$STATE/ssh_config"

pidfile="$STATE/dockerd.pid"
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile")
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    log "stopping dockerd (ours, pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 120); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
    [ ! -d "/proc/$pid" ] || log "dockerd pid $pid still running after 30s"
  fi
  rm -f "$pidfile"
fi

if [ "$PURGE" = 1 ] && [ -d "$STATE" ]; then
  log "removing $STATE"
  rm -rf "$STATE"
fi
log "down"
