#!/bin/sh
# Start Flower on the hygge broker, but never open: without credentials it refuses to start.
# Credentials come from FLOWER_BASIC_AUTH ("user:password", comma-separated for several users),
# which Flower reads from the environment itself, so they never appear in the process list.
# `hygge flower` itself refuses to start without auth too (worker/launch.py); this script adds
# the container's checks of the credentials (both parts, length, not the example value).
set -eu

refuse() {
  echo "hygge-flower: refusing to start: $1" >&2
  echo "hygge-flower: set FLOWER_BASIC_AUTH=user:password (in .env for Compose, in the" \
    "hygge-flower Secret on Kubernetes); see docs/containers.md" >&2
  exit 64
}

auth=${FLOWER_BASIC_AUTH:-}
[ -n "$auth" ] || refuse "FLOWER_BASIC_AUTH is not set, and an open Flower would show every task to anyone"
case "${FLOWER_UNAUTHENTICATED_API:-}" in
  1|true|True|TRUE|yes) refuse "FLOWER_UNAUTHENTICATED_API is set, which opens Flower's API without auth" ;;
esac
old_ifs=$IFS
IFS=,
for pair in $auth; do
  user=${pair%%:*}
  password=${pair#*:}
  [ "$pair" != "$user" ] && [ -n "$user" ] && [ -n "$password" ] \
    || refuse "FLOWER_BASIC_AUTH must be user:password (got an entry without both)"
  [ "${#password}" -ge 8 ] || refuse "the password for Flower user '$user' is shorter than 8 characters"
  [ "$password" != "change-me-please" ] || refuse "the password for Flower user '$user' is still the example value"
done
IFS=$old_ifs

exec hygge flower --address="${FLOWER_ADDRESS:-0.0.0.0}" --port=5555 "$@"
