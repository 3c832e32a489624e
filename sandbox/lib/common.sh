# shellcheck shell=bash
# Shared settings for sandbox/up.sh and sandbox/down.sh (sourced, not executed).
# shellcheck disable=SC2034 # the settings are used by the scripts that source this file

SANDBOX_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$SANDBOX_SRC/.." && pwd)"
STATE="${LAYRA_SANDBOX_DIR:-$REPO_ROOT/.sandbox}"
VENV="${VENV:-$REPO_ROOT/.venv}"
# absolute, so links and mounts made from them work from anywhere
STATE=$(realpath -m "$STATE")
VENV=$(realpath -m "$VENV")

NETWORK=layra-sandbox
SUBNET=198.18.1.0/24
IP_PREFIX=198.18.1.
IP_BASE=10                       # sandbox-N gets 198.18.1.(10+N)
OUTER_BIP=198.18.0.1/24
OUTER_POOL=base=198.19.0.0/17,size=24

BASE_IMAGE=local/debian:bookworm
HOST_IMAGE=layra-sandbox/host:1
MARIADB_IMAGE=layra-sandbox/mariadb:10.11
REDIS_IMAGE=layra-sandbox/redis:7
PYTHON_IMAGE=layra-sandbox/python:3
NGINX_IMAGE=layra-sandbox/nginx:1.22
MILVUS_IMAGE=layra-sandbox/milvus:2.3.5
STACK_IMAGES=("$MARIADB_IMAGE" "$REDIS_IMAGE" "$PYTHON_IMAGE" "$NGINX_IMAGE" "$MILVUS_IMAGE")
# The real Milvus standalone server: the Milvus project's embedded distribution on PyPI
# (binary and libraries lzma-compressed in the wheel), pinned by its sha256 in the Dockerfile.
MILVUS_WHEEL=milvus-2.3.5-py3-none-manylinux2014_x86_64.whl

# Docker-in-Docker without --privileged (see shared/ENVIRONMENT.md).
DIND_FLAGS=(
  --cap-add ALL --cap-drop SYS_RESOURCE
  --security-opt seccomp=unconfined
  --security-opt apparmor=unconfined
  --security-opt systempaths=unconfined
  --device-cgroup-rule 'a *:* rwm'
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw
)

# No buildx on these machines: use the classic builder explicitly.
export DOCKER_BUILDKIT=0

log() { printf 'sandbox: %s\n' "$*" >&2; }
die() { printf 'sandbox: ERROR: %s\n' "$*" >&2; exit 1; }

host_name() { printf 'sandbox-%d' "$1"; }
host_container() { printf 'layra-sandbox-%d' "$1"; }
host_ip() { printf '%s%d' "$IP_PREFIX" "$((IP_BASE + $1))"; }
host_volume() { printf 'layra-sandbox-%d-docker' "$1"; }

docker_up() { docker info >/dev/null 2>&1; }
