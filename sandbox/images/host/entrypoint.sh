#!/bin/bash
# PID 1 of a sandbox test host: start the inner dockerd, then sshd; stop both
# cleanly on SIGTERM.
set -u
mkdir -p /run/sshd /var/log
# a host killed before its dockerd exited leaves its pid file, and dockerd refuses to start
rm -f /var/run/docker.pid
dockerd --bip 198.18.100.1/24 \
        --default-address-pool base=198.19.128.0/17,size=24 \
        >>/var/log/dockerd.log 2>&1 </dev/null &
dockerd_pid=$!
sshd_pid=
stop() {
  [ -n "$sshd_pid" ] && kill -TERM "$sshd_pid" 2>/dev/null
  kill -TERM "$dockerd_pid" 2>/dev/null
  wait "$dockerd_pid" 2>/dev/null
  exit 0
}
trap stop TERM INT
for _ in $(seq 1 240); do
  docker info >/dev/null 2>&1 && break
  kill -0 "$dockerd_pid" 2>/dev/null || { echo "dockerd died:" >&2; tail -n 30 /var/log/dockerd.log >&2; exit 1; }
  sleep 0.25
done
docker info >/dev/null 2>&1 || { echo "dockerd not ready" >&2; tail -n 30 /var/log/dockerd.log >&2; exit 1; }
echo "sandbox-host: dockerd ready" >&2
/usr/sbin/sshd -D -e &
sshd_pid=$!
# Stay in the foreground with sshd; reap orphans meanwhile.
while kill -0 "$sshd_pid" 2>/dev/null; do
  wait "$sshd_pid"
done
echo "sandbox-host: sshd exited" >&2
stop
