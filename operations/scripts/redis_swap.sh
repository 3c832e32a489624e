# shellcheck shell=sh
# Put an RDB snapshot in place of a Redis service's data, or put the data back
# (operations.redis.restored). Runs in a throwaway container of the Redis service (`docker
# compose run`, as root, with the service's volumes), the service itself being stopped.
# Arguments: mode (swap|revert), dir, dbfilename, appendonly (yes|no), appenddirname (""
# before Redis 7), appendfilename.
#
# swap: the RDB arrives on stdin. The service's own redis-server loads it in a staging
# directory beside the data (nothing live is touched if it does not load: bad file, newer
# RDB version), saves it back (a clean RDB) and, when the server runs with AOF, turns AOF
# on so that it writes the AOF from the loaded data: Redis 7 started with appendonly yes
# loads only its AOF, never dump.rdb. Then the live files are renamed to *.pre-restore
# (the safety copy) and the new ones renamed in; any failure puts the old ones back.
# revert: put the *.pre-restore files back (the service did not come up on the new data).
set -eu
umask 077
unset REDISCLI_AUTH
mode=$1 dir=$2 db=$3 aof=$4 aofdir=$5 aoffile=$6
aofpath=${aofdir:-$aoffile}
stage=.layra-restore sock=/tmp/layra-restore.sock log=/tmp/layra-restore.log
pid='' swapping=0
cd "$dir"
revert() {
  if [ -e "$db.pre-restore" ]; then mv -f "$db.pre-restore" "$db"; else rm -f "$db"; fi
  rm -rf "$aofpath"
  if [ -e "$aofpath.pre-restore" ]; then mv "$aofpath.pre-restore" "$aofpath"; fi
}
if [ "$mode" = revert ]; then revert; exit 0; fi
cleanup() {
  rc=$?
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  if [ "$swapping" = 1 ]; then revert || true; fi
  # shellcheck disable=SC2115 # never /: $stage is .layra-restore
  rm -rf "$dir/$stage"
  exit "$rc"
}
trap cleanup EXIT
D=$dir awk '$5 != "/" && (ENVIRON["D"] == $5 || index(ENVIRON["D"], $5 "/") == 1) {f = 1} END {exit !f}' \
  /proc/self/mountinfo || { echo "$dir is not on a volume: a restore would not outlive this container" >&2; exit 1; }
if [ -e "$db" ]; then owner=$(stat -c %u:%g "$db"); else owner=$(stat -c %u:%g .); fi
rm -rf "$stage" && mkdir "$stage"
cat >"$stage/$db"
set -- --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$dir/$stage" --dbfilename "$db" \
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
[ "$aof" != yes ] || [ -e "$stage/$aofpath" ] || { echo "no AOF was written" >&2; exit 1; }
chown -R "$owner" "$stage"
swapping=1
rm -rf "$db.pre-restore" "$aofpath.pre-restore"
if [ -e "$db" ]; then mv "$db" "$db.pre-restore"; fi
if [ -e "$aofpath" ]; then mv "$aofpath" "$aofpath.pre-restore"; fi
mv "$stage/$db" "$db"
if [ "$aof" = yes ]; then mv "$stage/$aofpath" "$aofpath"; fi
swapping=0
echo "loaded $keys keys into $dir/$db"
