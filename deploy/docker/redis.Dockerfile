# Redis from Debian, for machines where no registry is reachable (the public default in
# docker-compose.yml is redis:7-alpine). Built by deploy/scripts/base-image.sh.
ARG BASE_IMAGE=hygge-base:bookworm
FROM ${BASE_IMAGE}
# Versions come from the Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
# Debian's redis-server package creates the redis user; its uid is not fixed.
# hadolint ignore=DL3066
USER redis
EXPOSE 6379
CMD ["redis-server", "--dir", "/data"]
