# mmd: the market-making daemon as a container (see deploy/docker-compose.yml).
#
#   docker build -t mmd .
#   docker run -d -p 9464:9464 -v "$PWD/config.toml:/etc/mmd/config.toml:ro" mmd
#
# Locked down (as compose and deploy/k8s run it): a read-only root filesystem, the ledger and
# models in a volume, a tmpfs for /tmp, a non-root user:
#
#   docker run -d --read-only --tmpfs /tmp -v mmd-data:/var/lib/mmd -p 9464:9464 mmd
#
# Works on the official python:3.11-slim-bookworm and on a locally made base that only has Debian's
# /usr/bin/python3 (deploy/docker/base-image.sh): everything runs from the venv at /opt/venv.
# No build-time downloads beyond pip.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NUMBA_CACHE_DIR=/var/cache/mmd/numba \
    MMD_METRICS__HOST=0.0.0.0 \
    MMD_STATE__DIR=/var/lib/mmd/state \
    MMD_MODELS__DIR=/var/lib/mmd/models

# the daemon's user; it owns the ledger/model volume and the numba cache, nothing else
RUN groupadd --system --gid 10001 mmd \
    && useradd --system --uid 10001 --gid mmd --home-dir /var/lib/mmd --no-create-home \
        --shell /usr/sbin/nologin mmd \
    && mkdir -p /var/lib/mmd/state /var/lib/mmd/models /var/cache/mmd/numba /etc/mmd \
    && chown -R mmd:mmd /var/lib/mmd /var/cache/mmd

# the runtime dependencies and the build backend exactly as locked (requirements.lock, made by
# deploy/lock.sh): every file pip fetches must match a sha256 of the lock. A layer of its own, so
# a change under mmd/ does not reinstall them.
COPY requirements.lock /src/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --require-hashes \
        -r /src/requirements.lock
# then the package alone, built by the locked setuptools: nothing unlocked is fetched
COPY pyproject.toml README.md /src/
COPY mmd /src/mmd
RUN /opt/venv/bin/python -m pip install --no-cache-dir --no-deps --no-build-isolation /src \
    && rm -rf /src

# the documented defaults; compose mounts the deployment's config read-only over it
COPY config.toml /etc/mmd/config.toml
# runs `mmd`; with a read-only root it moves the numba cache to /tmp first (see the script)
COPY deploy/docker/entrypoint.sh /usr/local/bin/mmd-entrypoint

# numeric, so Kubernetes runAsNonRoot can verify it: uid 10001 is the mmd user created above
USER 10001:10001
WORKDIR /var/lib/mmd
# compile every numba kernel now, into NUMBA_CACHE_DIR (owned by mmd); another CPU only recompiles
RUN python -m mmd.kernels.warmup

EXPOSE 9464
# no curl in the image: python asks /healthz (the port follows MMD_METRICS__PORT when it is set)
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MMD_METRICS__PORT', '9464'), timeout=3)"]

ENTRYPOINT ["/bin/sh", "/usr/local/bin/mmd-entrypoint"]
CMD ["run", "-c", "/etc/mmd/config.toml"]
