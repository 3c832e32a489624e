# shellcheck shell=sh
# Reload nginx and return once it serves the new configuration (operations.maintenance:
# the drop-in that answers writes 503). `nginx -s reload` only signals the master; moments
# later it starts new workers and tells the old ones to stop accepting (they finish what
# they serve). Until then a request may still meet an old worker and the old
# configuration: a write let through after "maintenance on" said done. Runs inside the
# nginx container (its /proc). Fails when an old worker still accepts 10 s on.
workers() {
  for p in /proc/[0-9]*; do
    case $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) in
      "nginx: worker process is shutting down"*) ;;
      "nginx: worker process"*) printf '%s ' "${p#/proc/}" ;;
    esac
  done
}
old=$(workers)
nginx -s reload || exit 1
tries=0
while [ "$tries" -lt 100 ]; do
  still=
  for p in $(workers); do
    case " $old" in *" $p "*) still="$still $p" ;; esac
  done
  [ -n "$still" ] || exit 0
  tries=$((tries + 1))
  sleep 0.1
done
echo "nginx still serves with its old workers ($still) 10 s after the reload" >&2
exit 1
