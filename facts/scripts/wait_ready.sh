# shellcheck shell=bash
# Waiting until containers are ready, one meaning everywhere (a service recreated, a
# volume set started again, the stack brought up, Redis restarted on restored data):
#
# ready:      running, and healthy where it has a healthcheck: Docker says so, or, while
#             Docker still says starting, the container's own healthcheck command passes
#             when run now (Docker runs its first check only one interval after the start:
#             30 s by default, which a restart in the maintenance window must not wait out);
# failed now: exited, dead or gone, or unhealthy (its healthcheck failed `retries` times
#             after its start period: no waiting that out);
# else:       waited for, up to the timeout.
#
# With as_sick set (replacing containers that are unhealthy already), a new container
# counts as ready once it runs and its healthcheck has run once, passed or not.
#
# layra_state CONTAINER: healthy, unhealthy, starting (health), or running, exited... (none).
layra_state() {
  docker inspect -f '{{if and (eq .State.Status "running") .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null || echo gone
}
# layra_why CONTAINER TIMEOUT: "container 4f2a9c1d0e3b is unhealthy after up to 120s (last healthcheck: ...)".
layra_why() {
  local last
  last=$(docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{json .Output}}{{println}}{{end}}{{end}}' "$1" 2>/dev/null | grep . | tail -n 1)
  [ "${#last}" -le 300 ] || last="...${last: -300}"
  printf 'container %s is %s after up to %ss%s' "${1:0:12}" "$(layra_state "$1")" "$2" "${last:+ (last healthcheck: $last)}"
}
# layra_checked CONTAINER: its healthcheck has run at least once (it answers, or says why not).
layra_checked() {
  [ "$(docker inspect -f '{{if .State.Health}}{{len .State.Health.Log}}{{else}}0{{end}}' "$1" 2>/dev/null)" -gt 0 ]
}
# layra_probe CONTAINER: runs the container's own healthcheck command now, as Docker would
# (`docker exec`, its user and environment; CMD-SHELL through /bin/sh -c): 0 when it passes
# within 10 s (a slower check is left to Docker).
layra_probe() {
  case $(docker inspect -f '{{with .Config.Healthcheck}}{{index .Test 0}}{{end}}' "$1" 2>/dev/null) in
    CMD-SHELL)
      timeout 10 docker exec "$1" /bin/sh -c "$(docker inspect -f '{{index .Config.Healthcheck.Test 1}}' "$1")" \
        >/dev/null 2>&1 ;;
    CMD)
      docker inspect -f '{{range slice .Config.Healthcheck.Test 1}}{{printf "%s\x00" .}}{{end}}' "$1" | head -c -1 |
        timeout 10 xargs -0 docker exec "$1" >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}
# layra_probed CONTAINER...: "<name> passed" or "<name> failed" for each one Docker says is
# starting, its own healthcheck run now (layra_probe) and, while it fails, once a second
# for up to 5 s: Docker calls a starting container healthy at its first passing check and
# keeps it so until `retries` checks in a row fail, so one failing run is no verdict (seen:
# a real Milvus restored under load passed for the wait, then failed one run in phase 1).
layra_probed() {
  local id health name tries
  docker inspect -f '{{.Id}} {{if .State.Health}}{{.State.Health.Status}}{{end}} {{.Name}}' "$@" 2>/dev/null |
    while read -r id health name; do
      [ "$health" = starting ] || continue
      tries=0
      until layra_probe "$id" </dev/null; do
        tries=$((tries + 1))
        [ "$tries" -le 5 ] || { echo "${name#/} failed"; continue 2; }
        sleep 1
      done
      echo "${name#/} passed"
    done
}
# layra_wait_ready TIMEOUT CONTAINER...: 0 once every one is ready; 1 at once for one that
# failed, or at the timeout; layra_bad then names the container (layra_why says why).
layra_wait_ready() {
  local end=$((SECONDS + $1)) c
  shift
  while :; do
    layra_bad=
    for c in "$@"; do
      case $(layra_state "$c") in
        healthy|running) ;;
        unhealthy) [ -n "${as_sick:-}" ] || { layra_bad=$c; return 1; } ;;
        starting) { [ -n "${as_sick:-}" ] && layra_checked "$c"; } || layra_probe "$c" || layra_bad=$c ;;
        exited|dead|gone) layra_bad=$c; return 1 ;;
        *) layra_bad=$c ;;
      esac
    done
    [ -n "$layra_bad" ] || return 0
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 1
  done
}
