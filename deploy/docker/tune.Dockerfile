# The mmd image plus the `train` extra (Optuna, Dask's distributed, scikit-learn): what
# `mmd tune` and its Dask scheduler and workers run (deploy/docker-compose.yml, profile `tune`).
#
#   docker build -t mmd:latest . && docker build -t mmd-tune:latest -f deploy/docker/tune.Dockerfile .
FROM mmd:latest

USER root
# the same lower bounds as pyproject.toml's `train` extra
RUN /opt/venv/bin/python -m pip install --no-cache-dir \
        "optuna>=4.0" "cmaes>=0.10" "distributed>=2024.1" "scikit-learn>=1.3"
USER 10001:10001

EXPOSE 8786
