# shellcheck shell=bash
# Shell functions shared by facts.volumes.VolumeSet (volume_inspect.sh) and the volume
# operations, so that the fingerprint of a live volume, of an extracted archive and of the
# snapshot's descriptor are computed by one and the same code. Set before it: project
# (the Compose project's name), and `set -o pipefail`.
#
# fingerprint DIR: one JSON object, keys sorted like Python's json.dumps(sort_keys=True):
# the number and bytes of regular files and a sha256 over every entry's type, mode,
# owner, size and modification time in whole seconds (files), link target (symlinks)
# and name. No file is read: like rsync's quick check, a write shows in a file's size or
# mtime, and an archive's content is vouched for by its sha256 before it is extracted
# (tar restores mtimes, to the second). Hashing every byte cost 2-4x the archive itself
# (bench/mysql.py), and the dry run reads this. Sockets are left out (tar cannot archive
# them). A directory that does not exist prints {"exists": false}.
#
# containers SERVICE: the ids of the service's containers in the project ($project).
# running SERVICE...: the services of those with a running container.
# wait_ready TIMEOUT SERVICE...: until the services' containers are ready (wait_ready.sh:
# layra_wait_ready, which this library is given before it); otherwise names the service,
# its container and why (or that it has none).
#
# shellcheck disable=SC2154 # project is assigned before the script (facts.shell.assign)
fingerprint() {
  if [ ! -d "$1" ]; then printf '{"exists": false}'; return 0; fi
  ( set -o pipefail; cd "$1" || exit 1
    sum=$( { find . -maxdepth 0 -printf 'root %m %U:%G\0' &&
             find . -mindepth 1 ! -type s \( -type f -printf 'f %m %U:%G %s %Ts %P\0' \) -o \
               \( -type l -printf 'l %U:%G %P -> %l\0' \) -o \( ! -type s -printf '%y %m %U:%G %P\0' \) |
               LC_ALL=C sort -z; } | sha256sum) || exit 1
    find . -type f -printf '%s\n' | awk -v s="${sum%% *}" \
      '{n++; b += $1} END {printf "{\"bytes\": %.0f, \"files\": %.0f, \"sha256\": \"%s\"}", b, n, s}' )
}
containers() {
  docker ps -aq --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" --filter label=com.docker.compose.oneoff=False
}
running() {
  local s; for s in "$@"; do
    [ -z "$(docker ps -q --filter "label=com.docker.compose.project=$project" \
      --filter "label=com.docker.compose.service=$s" --filter status=running)" ] || printf '%s ' "$s"
  done
}
wait_ready() {
  local timeout=$1 s c found ids=
  local -A service_of
  shift
  for s in "$@"; do
    found=$(containers "$s")
    [ -n "$found" ] || { echo "not ready: $s: it has no container" >&2; return 1; }
    for c in $found; do ids="$ids $c"; service_of[$c]=$s; done
  done
  # shellcheck disable=SC2086 # a list of container ids, split into arguments on purpose
  layra_wait_ready "$timeout" $ids ||
    { echo "not ready: ${service_of[$layra_bad]}: $(layra_why "$layra_bad" "$timeout")" >&2; return 1; }
}
