#!/bin/bash
# layra-sandbox/milvus entrypoint: drop the session keys a previous Milvus process left in
# etcd, then exec the server (CMD: milvus run standalone).
#
# Milvus 2.3.5 leaves its session keys (<rootPath>/meta/session/rootcoord, querycoord,
# datacoord, proxy-N, ...) in etcd on a clean SIGTERM stop as well as on a kill; they live
# until their lease (common.session.ttl, 30 s) expires, and a new process started before
# that waits for them ("node not match"), so a restart took ~25-35 s instead of ~6 s. A
# restored etcd volume brings such keys back too (etcd re-grants their leases in full on
# start). Only one standalone Milvus uses this etcd prefix, and it is not running yet: the
# keys are stale. <rootPath>/meta/session/id (the server-ID counter) is kept.
#
# Env: ETCD_ENDPOINTS (first one is used; default milvus-etcd:2379, as milvus.yaml),
#      ETCD_ROOTPATH (default by-dev, as milvus.yaml), MILVUS_PURGE_STALE_SESSIONS=0 to skip.
set -u

etcd_post() {  # PATH JSON -> response body on stdout (HTTP/1.0 over bash's /dev/tcp)
  local hp=$1 path=$2 body=$3 resp
  exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}" 2>/dev/null || return 1
  printf 'POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "$path" "$hp" "${#body}" "$body" >&3
  resp=$(timeout 5 cat <&3) || { exec 3<&-; return 1; }
  exec 3<&-
  [[ $resp == HTTP/1.?\ 200* ]] || return 1
  printf '%s' "${resp#*$'\r\n\r\n'}"
}

purge_sessions() {
  local ep=${ETCD_ENDPOINTS:-milvus-etcd:2379}
  ep=${ep%%,*}; ep=${ep#http://}
  local prefix="${ETCD_ROOTPATH:-by-dev}/meta/session/" r1 r2
  # [prefix, prefix+"id") and (prefix+"id", prefix+"0"): everything but the id counter
  local a b c d
  a=$(printf '%s' "$prefix" | base64 -w0)
  b=$(printf '%s' "${prefix}id" | base64 -w0)
  c=$(printf '%s\0' "${prefix}id" | base64 -w0)
  d=$(printf '%s' "${prefix%/}0" | base64 -w0)
  for _ in $(seq 1 50); do  # etcd may still be starting: ~10 s, then let Milvus retry itself
    if r1=$(etcd_post "$ep" /v3/kv/deleterange "{\"key\":\"$a\",\"range_end\":\"$b\"}") &&
       r2=$(etcd_post "$ep" /v3/kv/deleterange "{\"key\":\"$c\",\"range_end\":\"$d\"}"); then
      echo "milvus-entrypoint: purged stale sessions under $prefix on $ep: $r1 $r2" >&2
      return 0
    fi
    sleep 0.2
  done
  echo "milvus-entrypoint: etcd $ep not reachable; stale sessions not purged" >&2
}

[ "${MILVUS_PURGE_STALE_SESSIONS:-1}" = 0 ] || purge_sessions
exec "$@"
