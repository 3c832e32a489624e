# shellcheck shell=bash
# Recreate one compose service's containers and wait until they are ready; behind nginx,
# rolling (new containers beside the old, nginx reloaded, the old ones stopped once its
# workers drained): facts.compose.replaced_command describes it. Prints one line saying
# what was done; fails naming the service and why, the old containers serving on.
#
# Set before it: project, service, nginx (the nginx service, "" when the service is not
# behind nginx), timeout (seconds), a `compose` function (docker compose bound to the
# stack), and wait_ready.sh's functions (what "ready" means).
#
# shellcheck disable=SC2154 # project, service, nginx, timeout are assigned before the script
# shellcheck disable=SC2086 # $old, $new, $ngx_ids: lists of container ids, split into arguments on purpose
fail() { echo "$service: $*" >&2; exit 1; }
ids() {
  docker ps -q --no-trunc "$@" --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$service" --filter label=com.docker.compose.oneoff=False | sort
}
reload() {
  local c out
  for c in $ngx_ids; do
    out=$(docker exec "$c" sh -c 'nginx -t -q 2>&1 && nginx -s reload 2>&1') || { echo "$out" >&2; return 1; }
  done
}
drain() {
  local end=$((SECONDS + timeout)) c
  sleep 1
  for c in $ngx_ids; do
    while docker exec "$c" sh -c 'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\0" " " | grep -q "shutting [d]own"'; do
      [ "$SECONDS" -lt "$end" ] || { echo "$service: nginx still finishes requests after ${timeout}s; going on" >&2; return 0; }
      sleep 1
    done
  done
}
short() { printf '%s\n' "$@" | cut -c 1-12 | paste -sd ' '; }
as_sick=
# shellcheck disable=SC2015 # either failing fails
old=$(ids) && all=$(ids -a) || fail "cannot list its containers"
if [ -z "$nginx" ] || [ -z "$old" ]; then
  compose up -d --no-deps --force-recreate "$service" || fail "docker compose up failed"
  new=$(ids)
  [ -n "$new" ] || fail "no container runs after docker compose up"
  layra_wait_ready "$timeout" $new || fail "$(layra_why "$layra_bad" "$timeout")"
  echo "$service: recreated ($(short $new))"
  exit 0
fi
ngx_ids=$(compose ps -q "$nginx") || fail "cannot list the containers of $nginx"
[ -n "$ngx_ids" ] || fail "$nginx runs no container to reload; nothing was changed"
[ "$old" = "$all" ] || fail "has containers that do not run; remove them first (docker compose rm $service): they would start again with their old configuration"
n=$(printf '%s\n' $old | wc -l)
# Replacing a release that is already unhealthy (write quiesce on a bad release, before
# rolling it back): the new containers need to be as ready as the old, not more.
as_sick=yes
for c in $old; do case $(layra_state "$c") in healthy|running) as_sick= ;; esac; done
[ -z "$as_sick" ] || echo "$service: its container(s) are unhealthy already; the new ones need only to run and be checked once" >&2
compose up -d --no-deps --no-recreate --scale "$service=$((2 * n))" "$service"; rc=$?
new=$(ids -a | grep -vxF "$old")
drop_new() { [ -z "$new" ] || docker rm -f $new >/dev/null; }
# shellcheck disable=SC2015 # either failing fails
[ "$rc" = 0 ] && [ -n "$new" ] || { drop_new; fail "docker compose up --scale $service=$((2 * n)) failed; the old container keeps serving"; }
layra_wait_ready "$timeout" $new || { msg=$(layra_why "$layra_bad" "$timeout"); drop_new; fail "the new $msg; it was removed, the old one keeps serving"; }
reload || { drop_new; fail "nginx ($nginx) did not reload; the new container was removed, the old one keeps serving"; }
drain
docker stop $old >/dev/null || fail "could not stop its old container(s) $(short $old)"
reload || fail "nginx ($nginx) did not reload after the old container(s) stopped"
docker rm $old >/dev/null || fail "could not remove its old container(s) $(short $old)"
echo "$service: $(short $old) replaced by $(short $new) behind $nginx"
