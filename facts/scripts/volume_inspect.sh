# shellcheck shell=bash
# What facts.volumes.VolumeSet reads of a set of services, in one round trip; runs after
# volume_library.sh. Arguments: the services (`set -- SERVICE...`). Set before it:
# project, with_fingerprint (yes|no).
#
# Prints tab-separated lines: `zstd yes|no` (whether the host can compress with zstd);
# per service `service <name> <container states>`; per volume mount of its containers
# `mount <service> <volume> <path on the host> <path in the container>`; per volume
# `volume <name> <driver> <options json> <running containers using it>` and
# `size <name> <bytes>` (du: no file is read), `aside <name>` where a restore's displaced
# copy (<path>.pre-restore) is still beside it; then, with with_fingerprint=yes,
# `fingerprint <volume> <json>` and `restored <volume> <json>` (the .layra-restored
# marker beside the volume, facts.volumes.RESTORED_MARKER). Four docker calls in all,
# whatever the set's size (each costs about 50 ms): the dry run reads this.
#
# shellcheck disable=SC2154 # project and with_fingerprint are assigned before the script
work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT || exit 1
printf 'zstd\t%s\n' "$(command -v zstd >/dev/null && echo yes || echo no)"
ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project" --filter label=com.docker.compose.oneoff=False) || exit 1
# per container: service, state, then name, host path and container path of each volume mount
# shellcheck disable=SC2086 # $ids: container ids, one argument each
[ -z "$ids" ] || docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}{{"\t"}}{{.State.Status}}{{range .Mounts}}{{if eq .Type "volume"}}{{"\t"}}{{.Name}}{{"\t"}}{{.Source}}{{"\t"}}{{.Destination}}{{end}}{{end}}' $ids >"$work/containers" || exit 1
touch "$work/containers"
for s in "$@"; do
  printf 'service\t%s\t%s\n' "$s" "$(awk -F '\t' -v s="$s" '$1 == s {print $2}' "$work/containers" | sort -u | paste -sd, -)"
  awk -F '\t' -v s="$s" '$1 == s {for (i = 3; i + 2 <= NF; i += 3) print "mount\t" s "\t" $i "\t" $(i + 1) "\t" $(i + 2)}' \
    "$work/containers" >>"$work/mounts"
done
touch "$work/mounts"
cat "$work/mounts"
# shellcheck disable=SC2046 # volume names, one argument each
set -- $(cut -f3 "$work/mounts" | LC_ALL=C sort -u)
# a volume gone since (removed in between) leaves its driver empty: volume_problems names it
[ $# -eq 0 ] || docker volume inspect -f '{{.Name}}{{"\t"}}{{.Driver}}{{"\t"}}{{json .Options}}' "$@" >"$work/volumes"
touch "$work/volumes"
[ $# -eq 0 ] || docker ps --no-trunc --format '{{.ID}}{{"\t"}}{{.Mounts}}' >"$work/running" || exit 1
for v in "$@"; do
  printf 'volume\t%s\t%s\t%s\n' "$v" "$(awk -F '\t' -v v="$v" '$1 == v {print $2 "\t" $3; exit}' "$work/volumes")" \
    "$(awk -F '\t' -v v="$v" '{n = split($2, m, ","); for (i = 1; i <= n; i++) if (m[i] == v) {print substr($1, 1, 12); break}}' "$work/running" | paste -sd, -)"
  path=$(awk -F '\t' -v v="$v" '$3 == v {print $4; exit}' "$work/mounts")
  printf 'size\t%s\t%s\n' "$v" "$(du -sb -- "$path" 2>/dev/null | cut -f1)"
  [ ! -d "$path.pre-restore" ] || printf 'aside\t%s\n' "$v"
  if [ "$with_fingerprint" = yes ]; then
    printf 'fingerprint\t%s\t%s\n' "$v" "$(fingerprint "$path")" || exit 1
    printf 'restored\t%s\t%s\n' "$v" "$(head -c 4096 "$path.layra-restored" 2>/dev/null)"
  fi
done
