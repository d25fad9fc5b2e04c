#!/bin/sh
# Make the base image `python:3.11-slim-bookworm` locally when no container registry is reachable.
#
#   DOCKER_HOST=... deploy/docker/base-image.sh
#
# Does nothing when the image already exists. Otherwise debootstraps a minimal Debian bookworm with
# python3, venv and pip (python3 is 3.11 there) and imports it under the official image's name, so
# the unchanged Dockerfile builds here as it does against the real image. The rootfs tarball is
# cached in MMD_BASE_CACHE (default /var/tmp/mmd-base-cache): reruns import it in seconds.
# Needs root and debootstrap; the mirror is MMD_DEBIAN_MIRROR, else the first bookworm URI in
# /etc/apt/sources.list*, else http://deb.debian.org/debian.
# Where this machine reaches PyPI through a TLS-inspecting proxy, its extra CA certificates
# (MMD_EXTRA_CA_DIR, default /usr/local/share/ca-certificates) are trusted in the base too, as a
# company's base image would: the Dockerfile itself stays the same everywhere.
set -eu

IMAGE="${MMD_BASE_IMAGE:-python:3.11-slim-bookworm}"
CACHE="${MMD_BASE_CACHE:-/var/tmp/mmd-base-cache}"
TARBALL="$CACHE/bookworm-python3-rootfs.tar"
DOCKER="${DOCKER:-docker}"

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base image $IMAGE present"
    exit 0
fi

mirror() {
    if [ -n "${MMD_DEBIAN_MIRROR:-}" ]; then
        echo "$MMD_DEBIAN_MIRROR"
        return
    fi
    # deb822 (URIs: ...) or one-line (deb URL bookworm main) sources, skipping security/updates
    uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}
               /^deb / && $3 == "bookworm" {print $2; exit}')"
    echo "${uri:-http://deb.debian.org/debian}"
}

if [ ! -s "$TARBALL" ]; then
    mkdir -p "$CACHE"
    root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    m="$(mirror)"
    echo "debootstrap bookworm from $m into $root (2-3 minutes)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$root" "$m"
    # keep the image small: apt lists and the .deb cache are not needed at run time
    ca_dir="${MMD_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
    if ls "$ca_dir"/*.crt >/dev/null 2>&1; then
        echo "trusting the extra CA certificates of $ca_dir in the base"
        cp "$ca_dir"/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates
        # pip (also the venv's own) verifies against the system bundle, which now has them
        printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    # never delete through a mount debootstrap may have left behind (/proc, /sys)
    if grep -q " $root/" /proc/mounts; then
        echo "left $root in place: something is still mounted under it" >&2
    else
        rm -rf "$root"
    fi
fi

echo "importing $TARBALL as $IMAGE"
"$DOCKER" import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["python3"]' \
    - "$IMAGE" <"$TARBALL"
