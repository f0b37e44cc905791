#!/usr/bin/env bash
# Validates deploy/k8s/** and deploy/docker-compose.yml offline (no cluster, no Docker engine, no
# network): Kubernetes JSON schemas bundled in the kubernetes-validate package (strict, two
# Kubernetes versions), the operators' CRD schemas in deploy/k8s/schemas/, `kubectl kustomize`
# builds, the compose-spec schema vendored in check-jsonschema, the Dockerfile through BuildKit's
# parser (`dockerfile` package), and cross-checks (scripts/validate-manifests.py). Exits non-zero on
# any problem.
#
#   scripts/validate-manifests.sh --install   # first create/refresh the tools' virtualenv (PyPI), then validate
#   scripts/validate-manifests.sh             # validate with the tools already installed
#
# The virtualenv lives in ${AFTERGLOW_TOOLS_DIR:-$HOME/.cache/afterglow-tools}/validate-venv and is
# reused while the pinned versions below are what it holds.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
CHECK_JSONSCHEMA_VERSION=0.39.0
DOCKERFILE_VERSION=3.4.0
VENV="${AFTERGLOW_TOOLS_DIR:-$HOME/.cache/afterglow-tools}/validate-venv"
STAMP="$VENV/.afterglow-pins"
PINS="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION check-jsonschema==$CHECK_JSONSCHEMA_VERSION dockerfile==$DOCKERFILE_VERSION"

if [[ "${1:-}" == "--install" ]]; then
  if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$PINS" ]]; then
    echo "installing $PINS into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS
    echo "$PINS" > "$STAMP"
  fi
elif [[ -n "${1:-}" ]]; then
  echo "usage: $0 [--install]" >&2
  exit 2
fi

if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$PINS" ]]; then
  echo "validation tools missing: run $0 --install (PyPI: $PINS)" >&2
  exit 2
fi

status=0
echo "== docker compose: compose-spec schema (check-jsonschema's vendored copy)"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker-compose.yml || status=1
if docker compose version >/dev/null 2>&1; then
  # Where the compose plugin exists, its own loader too (interpolation, merges, references);
  # `config` needs no Docker engine.
  echo "== docker compose config"
  # The secrets compose requires (deploy/gen-secrets.sh writes the real ones): placeholders here.
  CLICKHOUSE_PASSWORD=validate AUTH_KEY_PEPPER=validate-pepper-0000 TRIGGERS_SECRET_KEY=validate \
    docker compose -f deploy/docker-compose.yml --profile app config --quiet || status=1
fi

echo "== Kubernetes manifests, kustomizations, cross-checks, compose wiring"
"$VENV/bin/python" scripts/validate-manifests.py || status=1

exit $status
