# shellcheck shell=sh
# The stack's work lock: see hold_work.sh.
#
# layra_work_in_progress LOCK WAIT: nothing when no step holds LOCK (waiting up to WAIT
# seconds for those that do to end, and then clearing their lines); else "busy" and the
# lines of the holders whose shell is still alive.
layra_work_in_progress() {
  [ -e "$1" ] || return 0
  exec 8>>"$1" || return 1
  if flock -x -w "$2" 8; then
    : >"$1"
    return 0
  fi
  echo busy
  while IFS= read -r line; do
    pid=${line##*(pid }
    pid=${pid%%,*}
    if kill -0 "$pid" 2>/dev/null; then printf '%s\n' "$line"; fi
  done <"$1"
}
