#!/bin/bash
# Runs INSIDE a sandbox host (docker exec). Installs the Layra-shaped stack at
# /srv/layra as a git repository with two releases and brings it up.
#   commit 1, tag v1.0.0  "release 1.0.0: knowledge bases"        (good)
#   commit 2, tag v1.1.0  "release 1.1.0: kb sharing (broken)"     (bad)
# HEAD is left detached at v1.0.0; branch main points at v1.1.0.
# An existing, healthy /srv/layra is left alone (HEAD and data untouched).
# SANDBOX_RESET=1 removes the stack, its volumes and /srv/layra first.
set -euo pipefail
SRC=${SRC:-/tmp/layra-stack-src}
DIR=/srv/layra
PROJECT=layra
log() { printf 'sandbox: [%s] %s\n' "$(hostname)" "$*" >&2; }

purge_project() {
  if [ -f "$DIR/docker-compose.yml" ] && [ -f "$DIR/.env" ]; then
    (cd "$DIR" && docker compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1) || true
  fi
  local ids
  ids=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  ids=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker volume rm $ids >/dev/null
  ids=$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker network rm $ids >/dev/null
  docker image prune -f >/dev/null
}

stack_healthy() {
  local want have
  want=$(cd "$DIR" && docker compose config --services 2>/dev/null | sort) || return 1
  [ -n "$want" ] || return 1
  have=$(docker ps --filter "label=com.docker.compose.project=$PROJECT" --filter health=healthy \
           --format '{{.Label "com.docker.compose.service"}}' | sort -u)
  [ "$want" = "$have" ]
}

if [ "${SANDBOX_RESET:-0}" = 1 ]; then
  log "SANDBOX_RESET=1: removing stack, volumes and $DIR"
  purge_project
  rm -rf "$DIR"
fi

# The sandbox's own stack sources, hashed: an install from other sources is redone.
src_hash=$(cd "$SRC" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ -d "$DIR/.git" ] && [ "$(cat "$DIR/.git/layra-sandbox-src" 2>/dev/null)" != "$src_hash" ]; then
  log "the sandbox's stack sources changed: reinstalling"
  purge_project
  rm -rf "$DIR"
fi

if [ -d "$DIR/.git" ] && [ -f "$DIR/.env" ]; then
  if stack_healthy; then
    log "stack present and healthy at $(git -C "$DIR" describe --tags --always 2>/dev/null || echo '?'): unchanged"
    exit 0
  fi
  log "stack present but not healthy: docker compose up -d --wait (HEAD and data untouched)"
  if ! (cd "$DIR" && docker compose up -d --wait --wait-timeout 180 >/tmp/layra-up.log 2>&1); then
    tail -n 20 /tmp/layra-up.log >&2
    log "stack at $(git -C "$DIR" describe --tags --always) stays unhealthy; rerun with SANDBOX_RESET=1 to reinstall"
    exit 1
  fi
  exit 0
fi

log "installing stack at $DIR"
purge_project            # leftovers of an earlier install (volumes keep old passwords)
rm -rf "$DIR"
mkdir -p "$DIR"
cd "$DIR"
git init -q -b main
git config user.name "Layra Release"
git config user.email "release@layra.invalid"
git config advice.detachedHead false
# Fixed dates: identical commit ids on every host and every install.
commit_release() {  # SRC_SUBDIR DATE SUBJECT TAG
  git ls-files -z | xargs -0 -r rm -f --
  find . -mindepth 1 -path ./.git -prune -o -type d -empty -delete 2>/dev/null || true
  # -h: a release shares files with another through symlinks (standins/)
  (cd "$SRC/$1" && tar -ch --exclude=__pycache__ --exclude='*.pyc' .) | tar -x
  git add -A
  GIT_AUTHOR_DATE="$2" GIT_COMMITTER_DATE="$2" git commit -q -m "$3"
  GIT_COMMITTER_DATE="$2" git tag -a "$4" -m "Layra ${4#v}"
}
commit_release release-1.0.0 "2025-11-01T10:00:00Z" "release 1.0.0: knowledge bases" v1.0.0
commit_release release-1.1.0 "2025-11-15T10:00:00Z" "release 1.1.0: kb sharing (broken)" v1.1.0
git checkout -q v1.0.0
echo "$src_hash" >.git/layra-sandbox-src

secret() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }
umask 077
{
  printf 'MYSQL_ROOT_PASSWORD=%s\n' "$(secret)"
  printf 'MYSQL_DATABASE=layra\n'
  printf 'MYSQL_USER=layra\n'
  printf 'MYSQL_PASSWORD=%s\n' "$(secret)"
  printf 'REDIS_PASSWORD=%s\n' "$(secret)"
  printf 'REDIS_TOKEN_DB=1\n'   # as Layra: sessions in one logical database,
  printf 'REDIS_TASK_DB=2\n'    # task state and its caches in another
  printf 'MONGODB_ROOT_USERNAME=root\n'   # Layra's own keys for MongoDB's user,
  printf 'MONGODB_ROOT_PASSWORD=%s\n' "$(secret)"
  printf 'MONGODB_DB=layra\n'             # password and database
  printf 'QDRANT_API_KEY=%s\n' "$(secret)"
  printf 'LAYRA_DEMO_PASSWORD=%s\n' "$(secret)"
  printf 'MAINTENANCE_MODE=false\n'
  printf 'HEALTH_INTERVAL=%s\n' "${HEALTH_INTERVAL:-2s}"
} >.env.tmp
chmod 0600 .env.tmp
mv .env.tmp .env

log "docker compose up -d --build --wait"
if ! docker compose up -d --build --wait --wait-timeout 300 >/tmp/layra-up.log 2>&1; then
  tail -n 40 /tmp/layra-up.log >&2
  docker compose ps -a >&2 || true
  log "stack did not become healthy"
  exit 1
fi
log "seeding MongoDB (stand-in), Qdrant (stand-in) and Milvus"
set -a
# shellcheck source=/dev/null # .env is written above, at install time
. ./.env
set +a
docker compose exec -T -e QDRANT_API_KEY backend python3 - <"$SRC/seed-data.py" >&2
docker compose exec -T milvus-etcd etcdctl put layra/sandbox/seeded 1.0.0 </dev/null >/dev/null
log "stack healthy at $(git describe --tags)"
