#!/usr/bin/env bash
# Build the base images locally where no image registry is reachable: a minimal Debian bookworm
# (debootstrap, from the same Debian mirror apt uses) with Python 3.11, venv and pip, imported
# into the engine as $HYGGE_BASE_IMAGE (default hygge-base:bookworm), and Debian's Redis on top
# of it as $HYGGE_REDIS_IMAGE (default hygge-redis:bookworm). Skips an image that already exists;
# HYGGE_BASE_REBUILD=1 forces both. Prints the seconds each took.
set -euo pipefail

IMAGE=${HYGGE_BASE_IMAGE:-hygge-base:bookworm}
REDIS_IMAGE=${HYGGE_REDIS_IMAGE:-hygge-redis:bookworm}
HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=${HYGGE_BASE_SUITE:-bookworm}
WORK=${HYGGE_BASE_WORKDIR:-/var/tmp/hygge-base-rootfs}

say() { printf 'base-image: %s\n' "$*" >&2; }

have() { [ "${HYGGE_BASE_REBUILD:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

build_redis() {
  if have "$REDIS_IMAGE"; then say "$REDIS_IMAGE exists, not rebuilding"; return; fi
  local start=$SECONDS
  docker build -q -t "$REDIS_IMAGE" --build-arg BASE_IMAGE="$IMAGE" \
    -f "$HERE/../docker/redis.Dockerfile" "$HERE/../docker" >/dev/null
  say "built $REDIS_IMAGE in $((SECONDS - start)) s"
}

if have "$IMAGE"; then
  say "$IMAGE exists, not rebuilding (HYGGE_BASE_REBUILD=1 to force)"
  build_redis
  exit 0
fi

# The mirror apt is configured with (deb822 sources or the classic list), so debootstrap reaches
# the same host apt does.
mirror() {
  local m
  m=$(grep -h -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
  [ -n "$m" ] || m=$(grep -h -E '^deb .*/debian/? ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    2>/dev/null | awk '{print $2}' | head -1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

command -v debootstrap >/dev/null 2>&1 || {
  say "installing debootstrap with apt-get"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
}

start=$(date +%s)
MIRROR=$(mirror)
rm -rf "$WORK"
mkdir -p "$WORK"
say "debootstrap $SUITE from $MIRROR into $WORK"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,ca-certificates,curl \
  "$SUITE" "$WORK" "$MIRROR" >"$WORK.log" 2>&1 || { tail -20 "$WORK.log" >&2; exit 1; }

# Trim what a container never needs: apt lists, caches, docs, man pages, locales.
rm -rf "$WORK"/var/lib/apt/lists/* "$WORK"/var/cache/apt/*.bin "$WORK"/var/cache/apt/archives/*.deb \
  "$WORK"/usr/share/doc/* "$WORK"/usr/share/man/* "$WORK"/usr/share/info/* "$WORK"/usr/share/locale/*

# Trust what this machine trusts: certificate authorities added locally (for example a TLS proxy
# in front of PyPI) go into the image too, so pip inside `docker build` verifies the same chain.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  say "adding local CA certificates: $(cd /usr/local/share/ca-certificates && echo *.crt)"
  cp /usr/local/share/ca-certificates/*.crt "$WORK/usr/local/share/ca-certificates/"
  chroot "$WORK" update-ca-certificates >/dev/null 2>&1
fi

say "importing as $IMAGE"
tar -C "$WORK" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["/bin/bash"]' \
  - "$IMAGE" >/dev/null
rm -rf "$WORK"
end=$(date +%s)
say "built $IMAGE in $((end - start)) s ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
build_redis
