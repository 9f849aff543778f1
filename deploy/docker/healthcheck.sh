#!/bin/sh
# Container healthcheck of a hygge worker: ping this container's own Celery node through the
# broker. Fails while the worker is still retrying the broker, so "healthy" means "consuming".
# HYGGE_WORKER_NODENAME overrides the node name (Celery's default is celery@<hostname>).
set -eu
node=${HYGGE_WORKER_NODENAME:-celery@$(hostname)}
exec celery --app worker.app inspect ping --destination "$node" --timeout "${HYGGE_HEALTHCHECK_TIMEOUT:-5}" >/dev/null
