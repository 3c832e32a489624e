# shellcheck shell=sh
# redis_served CID SOCKET COPY QUIET: wait until the Redis copy served in container CID
# (redis_copies.sh serve) answers PING on SOCKET inside it, that is, has loaded. A server
# loading answers LOADING, and a displaced AOF is copied before its server starts
# (/tmp/layra-copy.copying): both waited for however long they take (they grow with the
# data). Each docker call gets 10 s at most. Returns 3 when the container exited 3 (there is no such copy); 1, with the
# server's last lines, when it exited otherwise, or when it answered nothing at all, not
# even LOADING, for QUIET seconds, counted in whole seconds (a server that never came up,
# a daemon that no longer runs its commands): the wait is bounded by silence, not by the
# size of the copy.
redis_served() {
  served_quiet_since=$(date +%s)
  while :; do
    served_answer=$(timeout 10 docker exec "$1" redis-cli -s "$2" ping 2>&1)
    case $served_answer in
      PONG) return 0 ;;
      *LOADING*) served_quiet_since=$(date +%s) ;;
      *) if timeout 10 docker exec "$1" test -e /tmp/layra-copy.copying 2>/dev/null; then
           served_quiet_since=$(date +%s)
         fi ;;
    esac
    case $(timeout 10 docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$1") in
      'exited 3') return 3 ;;
      exited*|dead*)
        docker logs --tail 5 "$1" >&2
        echo "the $3 copy does not load" >&2
        return 1 ;;
    esac
    if [ $(($(date +%s) - served_quiet_since)) -ge "$4" ]; then
      docker logs --tail 5 "$1" >&2
      echo "the $3 copy's server answered nothing for $4 s, not even that it is loading" >&2
      return 1
    fi
    sleep 0.2
  done
}
