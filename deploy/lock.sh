#!/bin/sh
# Regenerate the two lock files from pyproject.toml with pip-compile (pip-tools), from the
# repository root:
#
#   python -m venv /tmp/lockenv && /tmp/lockenv/bin/pip install pip-tools==7.6.2
#   PATH="/tmp/lockenv/bin:$PATH" sh deploy/lock.sh              # keep the pins
#   PATH="/tmp/lockenv/bin:$PATH" sh deploy/lock.sh --upgrade    # newest allowed
#
# requirements-dev.lock: every extra (dev pulls train, export and deep), no hashes: `.ci/run`
#   and developers install with it as constraints (`pip install -c requirements-dev.lock -e
#   '.[dev]'`). torch keeps the plain pin of pyproject.toml (==2.13.0, no local label), so the
#   CPU wheel a machine has on disk satisfies it as before.
# requirements.lock: the daemon's runtime dependencies plus the build backend (setuptools), with
#   sha256 hashes of every published file of each pinned release; the Dockerfile installs it
#   with --require-hashes. Compiled under the dev lock as constraints, so both agree on every
#   version they share (tests/ops/test_lock.py checks it).
#
# pip-compile keeps the pins already in a lock file and changes one only when pyproject.toml
# no longer allows it; extra arguments (--upgrade, --upgrade-package NAME) go to both runs.
set -eu
cd "$(dirname "$0")/.."
export CUSTOM_COMPILE_COMMAND="sh deploy/lock.sh"

# pip-compile writes the project itself (`mmd @ file:///...`, pulled in by the dev extra's
# self-reference mmd[train,export,deep]) with its "# via" lines: drop that entry
drop_self() {
    awk '/^mmd @ /{skip=1; next} skip && /^ /{next} {skip=0; print}' "$1" >"$1.tmp"
    mv "$1.tmp" "$1"
}

pip-compile --quiet --extra dev --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
    --output-file requirements-dev.lock "$@" pyproject.toml
drop_self requirements-dev.lock
# `torch==2.13.0+cpu` -> `torch==2.13.0`: the local label names where a wheel came from
sed -E 's/^([A-Za-z0-9._-]+==[^ +]+)\+[A-Za-z0-9._]+/\1/' requirements-dev.lock \
    >requirements-dev.lock.tmp
mv requirements-dev.lock.tmp requirements-dev.lock

pip-compile --quiet --generate-hashes --allow-unsafe --build-deps-for wheel --strip-extras \
    --no-emit-index-url --no-emit-find-links --constraint requirements-dev.lock \
    --output-file requirements.lock "$@" pyproject.toml
drop_self requirements.lock
