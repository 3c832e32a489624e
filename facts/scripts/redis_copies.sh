# shellcheck shell=sh
# A Redis service's data and the two copies kept beside it in its data directory, on the
# same volume: the snapshot's data staged before the maintenance window
# (.layra-staged/), and the data a swap displaced (.layra-displaced/), the rollback's undo
# until the safety snapshot keeps it (operations.redis). Runs as root in a throwaway
# container of the Redis service (`docker compose run`, with the service's volumes); present
# and drop, which only look or remove, in the service's own running container.
# Arguments: mode, dir, dbfilename, appendonly (yes|no), appenddirname ("" before Redis
# 7), appendfilename, and the mode's own:
#
# stage SHA256: (the service may run) the RDB arrives on stdin. The service's own
#   redis-server loads it in a directory beside the data (a file that does not load, a
#   newer RDB version, changes nothing), saves it back (a clean RDB) and, when the server
#   runs with AOF, turns AOF on so that it writes the AOF from the loaded data (Redis 7
#   started with appendonly yes loads only its AOF, never dump.rdb). It becomes
#   .layra-staged, marked with the snapshot file's SHA256 last (a stage that died is no
#   staged copy).
# swap SHA256: (the service stopped) the live files move into .layra-displaced and the
#   staged ones in; any failure puts the live ones back. Exit 3, nothing touched, when no
#   copy of that snapshot is staged; refused while an earlier displaced copy is aside.
# revert: (the service stopped) the displaced files back in place of the restored ones.
# serve COPY (staged|displaced): a redis-server on that copy, in the foreground, on the
#   unix socket /tmp/layra-copy.sock only (the host reads it with `docker exec`). Exit 3
#   when there is no such copy. The copy is never written: a staged copy is served from
#   its RDB, a displaced AOF from a copy in the container (/tmp/layra-copy.copying exists
#   while that copy is made).
# present COPY: prints "present <the SHA256 it was staged from, if any>" or "absent".
# drop: the displaced copy removed (kept by then in a verified safety snapshot).
set -eu
umask 077
unset REDISCLI_AUTH
mode=$1 dir=$2 db=$3 aof=$4 aofdir=$5 aoffile=$6
aofpath=${aofdir:-$aoffile}
staged=.layra-staged displaced=.layra-displaced
sock=/tmp/layra-restore.sock log=/tmp/layra-restore.log
pid='' swapping=0
cd "$dir"

revert() {
  [ -d "$displaced" ] || return 0
  rm -f "$db" && rm -rf "$aofpath"
  if [ -e "$displaced/$db" ]; then mv "$displaced/$db" "$db"; fi
  if [ -e "$displaced/$aofpath" ]; then mv "$displaced/$aofpath" "$aofpath"; fi
  rmdir "$displaced"
}

case $mode in
  revert) revert; exit 0 ;;
  drop) rm -rf "$displaced"; exit 0 ;;
  present)
    if [ -d ".layra-$7" ]; then echo "present $(cat ".layra-$7/.snapshot" 2>/dev/null || true)"; else echo absent; fi
    exit 0 ;;
  serve)
    copy=.layra-$7
    [ -d "$copy" ] || exit 3
    set -- --port 0 --unixsocket /tmp/layra-copy.sock --unixsocketperm 700 --save "" --logfile "" \
      --repl-diskless-sync yes --repl-diskless-sync-delay 0 --appendfilename "$aoffile"
    if [ -n "$aofdir" ]; then set -- "$@" --appenddirname "$aofdir"; fi
    if [ "$copy" = "$displaced" ] && [ "$aof" = yes ] && [ -e "$copy/$aofpath" ]; then
      # Redis with AOF on may add to its AOF as it starts: served from a copy (marked while
      # it is made, which grows with the data: redis_served.sh waits for it)
      if ! { : >/tmp/layra-copy.copying && mkdir /tmp/layra-copy && cp -a "$copy/$aofpath" /tmp/layra-copy/; }; then
        echo "could not copy $dir/$copy/$aofpath to serve it" >&2
        exit 1
      fi
      rm /tmp/layra-copy.copying
      exec redis-server "$@" --dir /tmp/layra-copy --appendonly yes --dbfilename "$db"
    fi
    exec redis-server "$@" --dir "$dir/$copy" --appendonly no --dbfilename "$db" ;;
  stage|swap) sha=$7 ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac

cleanup() {
  rc=$?
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  if [ "$swapping" = 1 ]; then revert || true; fi
  rm -rf "$dir/$staged.new"
  exit "$rc"
}
trap cleanup EXIT

if [ "$mode" = swap ]; then
  [ "$(cat "$staged/.snapshot" 2>/dev/null)" = "$sha" ] || { echo "no copy of the snapshot is staged" >&2; exit 3; }
  [ ! -e "$displaced" ] ||
    { echo "$dir/$displaced holds the data an earlier swap displaced: keep it in a safety snapshot first" >&2; exit 1; }
  swapping=1
  mkdir "$displaced"
  if [ -e "$db" ]; then mv "$db" "$displaced/$db"; fi
  if [ -e "$aofpath" ]; then mv "$aofpath" "$displaced/$aofpath"; fi
  mv "$staged/$db" "$db"
  if [ "$aof" = yes ]; then mv "$staged/$aofpath" "$aofpath"; fi
  swapping=0
  rm -rf "$staged"
  echo "swapped the staged copy into $dir/$db; the data it displaced is in $dir/$displaced"
  exit 0
fi

D=$dir awk '$5 != "/" && (ENVIRON["D"] == $5 || index(ENVIRON["D"], $5 "/") == 1) {f = 1} END {exit !f}' \
  /proc/self/mountinfo || { echo "$dir is not on a volume: a restore would not outlive this container" >&2; exit 1; }
if [ -e "$db" ]; then owner=$(stat -c %u:%g "$db"); else owner=$(stat -c %u:%g .); fi
rm -rf "$staged.new" && mkdir "$staged.new"
cat >"$staged.new/$db"
set -- --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$dir/$staged.new" --dbfilename "$db" \
  --appendonly no --save "" --appendfilename "$aoffile" --logfile "$log"
if [ -n "$aofdir" ]; then set -- "$@" --appenddirname "$aofdir"; fi
redis-server "$@" &
pid=$!
cli() { redis-cli -s "$sock" "$@" 2>/dev/null; }
until [ "$(cli ping)" = PONG ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    pid=
    tail -n 3 "$log" >&2 || true
    echo "the snapshot does not load in this service's redis-server" >&2
    exit 1
  fi
  sleep 1
done
keys=$(cli dbsize)
[ "$(cli save)" = OK ] || { echo "redis-server could not save the loaded snapshot" >&2; exit 1; }
if [ "$aof" = yes ]; then
  [ "$(cli config set appendonly yes)" = OK ] || { echo "could not turn AOF on" >&2; exit 1; }
  while :; do
    info=$(cli info persistence)
    case $info in *aof_last_bgrewrite_status:err*) echo "the AOF rewrite failed" >&2; exit 1 ;; esac
    case $info in *aof_rewrite_in_progress:0*aof_rewrite_scheduled:0*) break ;; esac
    sleep 1
  done
fi
cli shutdown nosave >/dev/null || true
wait "$pid" || true
pid=
[ "$aof" != yes ] || [ -e "$staged.new/$aofpath" ] || { echo "no AOF was written" >&2; exit 1; }
printf '%s\n' "$sha" >"$staged.new/.snapshot"
chown -R "$owner" "$staged.new"
rm -rf "$staged" && mv "$staged.new" "$staged"
echo "staged $keys keys in $dir/$staged"
