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
# start_ready TIMEOUT SERVICE...: starts the services' containers and waits until they are
# ready, a service another one of them depends on first (the com.docker.compose.depends_on
# label compose puts on a container: "etcd:service_healthy:false,minio:..."), each round
# with `docker start` and wait_ready. `docker compose start` would hold a dependent until
# Docker's own verdict on the dependency, one healthcheck interval after its start (10 s
# in Layra's compose file): inside the window, the dependency's own check run now is
# enough. TIMEOUT is each round's; dependencies outside the set are left as they are.
# Exit 2, nothing started, where a container has no such label (a compose that does not
# write it): the order is unknown, the caller leaves it to `docker compose start`.
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
depends_of() {
  local c label item
  for c in $(containers "$1"); do
    label=$(docker inspect -f '{{range $k, $v := .Config.Labels}}{{if eq $k "com.docker.compose.depends_on"}}labelled:{{$v}}{{end}}{{end}}' "$c") || return 1
    [ "${label#labelled:}" != "$label" ] || return 2
    label=${label#labelled:}
    for item in ${label//,/ }; do printf '%s\n' "${item%%:*}"; done
  done
}
start_ready() {
  local timeout=$1 s d ids waits
  local -a left round rest
  local -A in_set started needs
  shift
  for s in "$@"; do in_set[$s]=1; done
  # every service's dependencies read once, before anything starts
  for s in "$@"; do needs[$s]=$(depends_of "$s") || return; done
  left=("$@")
  while [ ${#left[@]} -gt 0 ]; do
    round=() rest=()
    for s in "${left[@]}"; do
      waits=
      for d in ${needs[$s]}; do
        [ -z "${in_set[$d]:-}" ] || [ -n "${started[$d]:-}" ] || waits=1
      done
      if [ -z "$waits" ]; then round+=("$s"); else rest+=("$s"); fi
    done
    # services that wait on one another (compose refuses such a file): the rest together
    if [ ${#round[@]} -eq 0 ]; then round=("${rest[@]}") rest=(); fi
    ids=
    for s in "${round[@]}"; do
      d=$(containers "$s")
      [ -n "$d" ] || { echo "not ready: $s: it has no container" >&2; return 1; }
      ids="$ids $d"
    done
    # shellcheck disable=SC2086 # a list of container ids, split into arguments on purpose
    docker start $ids >/dev/null || { echo "not ready: ${round[*]}: docker start failed" >&2; return 1; }
    wait_ready "$timeout" "${round[@]}" || return 1
    for s in "${round[@]}"; do started[$s]=1; done
    left=("${rest[@]}")
  done
}
