# An S3-compatible object store for the compose stack: moto's server, installed from PyPI
# (pinned by constraints.txt) on the same base image as hygge, so the stack pulls no other
# image. An emulator keeps objects in memory: for trying the stack and its end-to-end check;
# point AWS_ENDPOINT_URL (.env) at a real S3 (or MinIO, ...) for anything else.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title=hygge
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 PATH=/opt/objectstore/bin:$PATH
COPY constraints.txt /tmp/constraints.txt
RUN python3 -m venv /opt/objectstore \
    && /opt/objectstore/bin/pip install -c /tmp/constraints.txt "moto[server]" \
    && /opt/objectstore/bin/pip uninstall -q -y pip setuptools \
    && groupadd --system --gid 10002 objectstore \
    && useradd --system --uid 10002 --gid objectstore --no-create-home --shell /usr/sbin/nologin objectstore
COPY deploy/docker/objectstore.py /usr/local/bin/hygge-objectstore
USER 10002:10002
EXPOSE 9000
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=10 CMD ["python3", "/usr/local/bin/hygge-objectstore", "--check"]
CMD ["python3", "/usr/local/bin/hygge-objectstore"]
