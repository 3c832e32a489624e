# shellcheck shell=bash
# qdrant_points COLLECTION PAGE: every point of a collection (its id, payload and vector),
# PAGE at a time in id order, as Qdrant's answers without their timing, on stdout: what
# the fingerprint hashes, whole. Each page starts at the previous one's next_page_offset
# (its answer's last field: a payload cannot fake it); the last says null. An answer other
# than 200 goes to stderr with its status on a line of its own, and the function returns 1.
# Needs `qdrant` (facts.qdrant.qdrant_client).
qdrant_points() {
  local offset=null next page code
  while :; do
    page=$(qdrant POST "/collections/$1/points/scroll" -H 'Content-Type: application/json' --data-binary \
      "{\"limit\": $2, \"with_payload\": true, \"with_vector\": true, \"offset\": $offset}" -w '\n%{http_code}\n' 2>&1)
    code=${page##*$'\n'} page=${page%$'\n'*}
    if [ "$code" != 200 ]; then printf '%s\n%s\n' "$page" "$code" >&2; return 1; fi
    page=${page%,\"status\":\"ok\",\"time\":*}
    printf '%s\n' "$page"
    next=${page##*\"next_page_offset\":} next=${next%%\}*}
    [ "$next" != null ] || return 0
    if [ "$next" = "$offset" ]; then printf 'next_page_offset %s does not move\n000\n' "$next" >&2; return 1; fi
    offset=$next
  done
}
