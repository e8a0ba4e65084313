#!/usr/bin/env sh
# MLflow tracking server + model registry with a PostgreSQL backend store.
#
# Binds 127.0.0.1 unless MLFLOW_HOST says otherwise (see docs/DEPLOYMENT.md, "Exposing
# servers"). Credentials never appear on the command line (where `ps` would show them):
# the backend URI names user, host and database only, and libpq reads the password from
# PGPASSWORD (or ~/.pgpass / a Kubernetes secret mounted as env).
#
#   MLFLOW_BACKEND_STORE_URI   postgresql+psycopg2://mlflow@db.internal:5432/mlflow  (required)
#   PGPASSWORD                 the database password (env or secret; never in the URI)
#   MLFLOW_ARTIFACTS_DESTINATION  where artifacts go: s3://bucket/mlflow or a local folder
#                              (default: ./mlartifacts); the server proxies them (--serve-artifacts)
#   MLFLOW_HOST / MLFLOW_PORT  bind address (default 127.0.0.1:5000)
#   MLFLOW_ALLOWED_HOSTS       Host headers accepted (DNS-rebinding guard; default localhost)
set -eu

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://USER@HOST:5432/DB (password in PGPASSWORD)}"
case "$MLFLOW_BACKEND_STORE_URI" in
  *://*:*@*) echo "run-server.sh: put the password in PGPASSWORD, not in MLFLOW_BACKEND_STORE_URI" >&2; exit 2 ;;
esac

HOST="${MLFLOW_HOST:-127.0.0.1}"
PORT="${MLFLOW_PORT:-5000}"
ARTIFACTS="${MLFLOW_ARTIFACTS_DESTINATION:-./mlartifacts}"
ALLOWED="${MLFLOW_ALLOWED_HOSTS:-localhost,127.0.0.1,localhost:$PORT,127.0.0.1:$PORT}"
BIN="${MLFLOW_BIN:-$(dirname "$0")/../../.venv/bin/mlflow}"

exec "$BIN" server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$ARTIFACTS" \
  --serve-artifacts \
  --host "$HOST" \
  --port "$PORT" \
  --allowed-hosts "$ALLOWED" \
  --workers "${MLFLOW_WORKERS:-2}"
