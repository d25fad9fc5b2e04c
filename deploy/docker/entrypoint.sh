#!/bin/sh
# The image's entry point: `mmd ARGS...` (the Dockerfile's CMD, or the arguments of `docker run`).
#
# numba keeps a cache only in a directory it can write. On a read-only root filesystem (docker run
# --read-only, compose `read_only: true`, Kubernetes readOnlyRootFilesystem) the kernels compiled
# at build time into NUMBA_CACHE_DIR are copied to /tmp (a tmpfs or an emptyDir) and numba is
# pointed there, so the daemon starts with them instead of compiling every kernel again (minutes).
# Without a writable /tmp numba compiles into its per-user cache under HOME (the data volume).
set -eu

if [ -n "${NUMBA_CACHE_DIR:-}" ] && [ -d "$NUMBA_CACHE_DIR" ] && [ ! -w "$NUMBA_CACHE_DIR" ] \
    && [ -w /tmp ]; then
    mkdir -p /tmp/numba-cache
    cp -R -p "$NUMBA_CACHE_DIR/." /tmp/numba-cache/
    export NUMBA_CACHE_DIR=/tmp/numba-cache
fi
exec mmd "$@"
