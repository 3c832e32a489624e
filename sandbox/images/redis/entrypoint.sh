#!/bin/bash
# Writes the config (requirepass from REDIS_PASSWORD, via the printf builtin:
# the password never reaches argv) and runs redis-server as user redis.
set -euo pipefail
CONF=/etc/redis/sandbox.conf
umask 077
mkdir -p /data /etc/redis
chown redis:redis /data
pw=${REDIS_PASSWORD-}
pw=${pw//\\/\\\\}
pw=${pw//\"/\\\"}
{
  printf 'bind 0.0.0.0\nport 6379\nprotected-mode no\ndaemonize no\n'
  printf 'appendonly no\ndir /data\ndbfilename dump.rdb\nlogfile ""\n'
  if [ -n "${REDIS_PASSWORD:-}" ]; then printf 'requirepass "%s"\n' "$pw"; fi
} >"$CONF"
chown redis:redis "$CONF"
exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$CONF" "$@"
