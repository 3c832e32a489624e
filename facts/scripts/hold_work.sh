# shellcheck shell=sh
# The stack's work lock: a file beside the stack's git metadata that every step changing
# data on the host holds (flock) for as long as it runs, whoever started it. A run that is
# killed leaves its steps running on the host (nothing tells them); they keep holding it
# until they end, and the next run waits for them before it reads or changes anything.
#
# layra_hold_work LOCK WHAT: hold LOCK shared on fd 9 for the rest of this shell and what it
# starts (the steps of one run restore side by side), and add a line naming WHAT, this
# shell's pid and the time.
layra_hold_work() {
  if ! { (umask 077 && : >>"$1") && exec 9>>"$1"; }; then
    echo "cannot open the work lock $1" >&2
    return 1
  fi
  flock -s -w 30 9 || { echo "the work lock $1 is held by a run that starts: $(cat "$1")" >&2; return 1; }
  printf '%s (pid %s, since %s)\n' "$2" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >&9
}
