# hygge worker image: `docker compose up --scale worker=4` runs it (see docs/containers.md).
# The base image is a build argument so the same file builds where no registry is reachable:
#   docker build --build-arg BASE_IMAGE=hygge-base:bookworm .   (deploy/scripts/base-image.sh)
# Any Debian-like image with Python >= 3.11 and the venv module works.
ARG BASE_IMAGE=python:3.11-slim

# --- build: hygge with its `distributed` (Celery, Redis, Flower) and `sql` extras, in a venv ---
FROM ${BASE_IMAGE} AS build
# The label lets deploy/scripts/e2e.py prune this project's dangling images (old builds).
LABEL org.opencontainers.image.title=hygge
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/hygge
WORKDIR /src
# Dependencies first (their layer is reused while only the code changes), then the code.
COPY pyproject.toml README.md* ./
COPY hygge ./hygge
COPY worker ./worker
# Extras to install; `--build-arg HYGGE_EXTRAS=distributed` for a smaller image without SQL
# or Delta (object-store files need no extra: pyarrow ships S3, Azure and GCS).
ARG HYGGE_EXTRAS=distributed,sql,cloud
# pip and setuptools are not needed at run time: removed, so the runtime cannot install code.
RUN /opt/hygge/bin/pip install ".[${HYGGE_EXTRAS}]" \
    && /opt/hygge/bin/python -c "import hygge, worker, flower" \
    && /opt/hygge/bin/pip uninstall -q -y pip setuptools

# --- runtime: the virtualenv, the samples and two small scripts; no compilers, no pip cache ----
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title=hygge
ENV PATH=/opt/hygge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HYGGE_BROKER_URL=redis://redis:6379/0 \
    HYGGE_SAMPLES_LAKE=/data/lake
RUN groupadd --system --gid 10001 hygge \
    && useradd --system --uid 10001 --gid hygge --home-dir /app --shell /usr/sbin/nologin hygge \
    && mkdir -p /app /data \
    && chown hygge:hygge /app /data
COPY --from=build /opt/hygge /opt/hygge
COPY deploy/docker/healthcheck.sh /usr/local/bin/hygge-healthcheck
COPY deploy/docker/flower.sh /usr/local/bin/hygge-flower
COPY --chown=hygge:hygge samples /app/samples
WORKDIR /app
USER 10001:10001
# Asks this container's own Celery node for a pong: healthy only once it is connected to the
# broker and consuming (a worker still retrying Redis is unhealthy).
HEALTHCHECK --interval=15s --timeout=10s --start-period=20s --retries=3 CMD ["hygge-healthcheck"]
# Exec form: the worker is PID 1 and gets SIGTERM itself, which Celery turns into a warm
# shutdown (finish the running flow, then exit).
CMD ["hygge", "worker", "--loglevel=INFO"]
