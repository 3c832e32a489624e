# shellcheck shell=bash
# Dump a Qdrant collection into a snapshot file on the host (operations.qdrant.dumped).
# Runs after facts.qdrant.qdrant_client (the `qdrant METHOD PATH [CURL_ARGS...]`
# function), with collection, tmp (the temporary download), file (the final name) and
# timeout (seconds) assigned, and `umask 077`.
#
# Qdrant names a snapshot itself and, with wait=false, answers before writing it: the
# new one is the first listed that was not before, once its checksum file is written.
# Its sha256 is checked against that checksum before it takes its final name; the
# server's copy is deleted whatever happens (one created after the timeout stays).
#
# shellcheck disable=SC2154 # collection, tmp, file, timeout are assigned before the script
fail() { echo "qdrant dump of $collection: $*" >&2; exit 1; }
snapshots() {
  out=$(qdrant GET "/collections/$collection/snapshots" 2>&1) || fail "listing snapshots: $out"
  printf '%s\n' "$out" | awk 'BEGIN { RS = "}" }
    match($0, /"name": *"[A-Za-z0-9_.-]+"/) {
      name = substr($0, RSTART, RLENGTH); sub(/^"name": *"/, "", name); sub(/"$/, "", name); sum = "-"
      if (match($0, /"checksum": *"[0-9a-f]+"/)) {
        sum = substr($0, RSTART, RLENGTH); sub(/^"checksum": *"/, "", sum); sub(/"$/, "", sum)
      }
      print name, sum
    }'
}
name=
trap 'rm -f "$tmp"; [ -z "$name" ] || qdrant DELETE "/collections/$collection/snapshots/$name" >/dev/null 2>&1 ||
  echo "qdrant: could not delete snapshot $name of $collection on the server" >&2' EXIT
before=$(snapshots) || exit 1
out=$(qdrant POST "/collections/$collection/snapshots?wait=false" 2>&1) || fail "creating a snapshot: $out"
for ((i = 0; ; i++)); do
  new=$(snapshots | awk 'NR == FNR { seen[$1]; next } !($1 in seen) && $2 != "-" { print; exit }' \
    <(printf '%s\n' "$before") -) || exit 1
  [ -z "$new" ] || break
  [ "$i" -lt "$timeout" ] ||
    fail "no new snapshot was listed within ${timeout}s (Qdrant may still write it: delete it once listed)"
  sleep 1
done
name=${new%% *} sum=${new#* }
out=$(qdrant GET "/collections/$collection/snapshots/$name" -o "$tmp" --max-time "$timeout" 2>&1) ||
  fail "downloading $name: $out $(head -c 300 "$tmp" 2>/dev/null)"
echo "$sum  $tmp" | sha256sum -c --status || fail "$name does not match the checksum Qdrant reports ($sum)"
mv -f "$tmp" "$file" || fail "could not write $file"
echo "qdrant $collection: $name -> $file ($(stat -c %s "$file") bytes)"
