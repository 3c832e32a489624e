# shellcheck shell=bash
# layra_redis_fingerprint: what each database of a Redis server holds, no key or value
# leaving the host. For each database in $dbs (or, where $dbs is empty, every database that
# has keys, from INFO keyspace) it prints, after a line naming them (`dbs 0 1 2`),
#
#   db N
#   keys <count> <sha256 of the sorted key names>
#   "<type> <sha1 of the value>"      one per sampled key (every n-th key, at most
#                                     $sample_size), hashed by the server itself
#   values <count> <sha256>           every key's "<type> <sha1 of its whole value>",
#                                     hashed by the server, the lines hashed here
#
# A reply that is not a type and a hash (an error) is printed instead of the values line.
# Set before it: `rcli` (redis-cli --no-raw in the service, its credentials exported: the
# first arguments may be `-n DB`), `volatile DB` (a filter: the key names of database DB
# without those that are not state), dbs, sample_size, sample_script and value_script
# (read-only Lua).
# shellcheck disable=SC2154 # dbs, sample_size, sample_script, value_script are assigned before the script
layra_redis_fingerprint() {
  local db info keys values bad n step
  if [ -z "$dbs" ]; then
    # an error reply (NOAUTH, a renamed INFO) must not read as "no database has keys"
    info=$(printf 'INFO keyspace\n' | rcli | tr -d '\r') || return 1
    case $info in
      "# Keyspace"*) ;;
      *) printf 'INFO keyspace answered: %s\n' "$info" >&2; return 1 ;;
    esac
    dbs=$(printf '%s\n' "$info" | sed -n 's/^db\([0-9][0-9]*\):.*/\1/p')
  fi
  # shellcheck disable=SC2086 # the numbers split on purpose: one line
  echo "dbs" $dbs
  keys=$(mktemp) || return 1
  values=$(mktemp) || { rm -f "$keys"; return 1; }
  for db in $dbs; do
    echo "db $db"
    rcli -n "$db" --scan | LC_ALL=C sort -u | volatile "$db" >"$keys" || { rm -f "$keys" "$values"; return 1; }
    n=$(wc -l <"$keys")
    step=$(( (n + sample_size - 1) / sample_size + (n == 0) ))
    echo "keys $n $(sha256sum <"$keys" | cut -d' ' -f1)"
    awk -v s="$step" -v script="$sample_script" '(NR - 1) % s == 0 {print "EVAL \"" script "\" 1 " $0}' "$keys" |
      rcli -n "$db" || { rm -f "$keys" "$values"; return 1; }
    awk -v script="$value_script" '{print "EVAL \"" script "\" 1 " $0}' "$keys" |
      rcli -n "$db" >"$values" || { rm -f "$keys" "$values"; return 1; }
    bad=$(grep -v -m 1 -E '^"[^ "]+ [0-9a-f]{40}"$' "$values")
    if [ -n "$bad" ]; then
      printf '%s\n' "$bad"
    else
      echo "values $(wc -l <"$values") $(sha256sum <"$values" | cut -d' ' -f1)"
    fi
  done
  rm -f "$keys" "$values"
}
