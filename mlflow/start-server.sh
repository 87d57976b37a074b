#!/usr/bin/env bash
# Start the MLflow tracking server of anpr: a SQL backend store for runs and the model registry,
# artifacts (models, reports) proxied to S3-compatible object storage. Everything comes from
# the environment (see server.env.example); clients need only MLFLOW_TRACKING_URI.
#
#   MLFLOW_ARTIFACTS_BUCKET=anpr-mlflow MLFLOW_S3_ENDPOINT_URL=http://127.0.0.1:8333 \
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... mlflow/start-server.sh
set -euo pipefail

fail() { echo "start-server.sh: error: $*" >&2; exit 2; }

data_dir="${MLFLOW_DATA_DIR:-$PWD/mlflow-data}"
backend="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$data_dir/mlflow.db}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
workers="${MLFLOW_WORKERS:-2}"
mlflow_bin="${MLFLOW_BIN:-mlflow}"

if [[ -z "${MLFLOW_ARTIFACTS_DESTINATION:-}" ]]; then
    [[ -n "${MLFLOW_ARTIFACTS_BUCKET:-}" ]] \
        || fail "set MLFLOW_ARTIFACTS_BUCKET (the S3 bucket for models and reports)"
    MLFLOW_ARTIFACTS_DESTINATION="s3://$MLFLOW_ARTIFACTS_BUCKET/${MLFLOW_ARTIFACTS_PREFIX:-mlflow}"
fi
if [[ "$MLFLOW_ARTIFACTS_DESTINATION" == s3://* ]]; then
    [[ -n "${AWS_ACCESS_KEY_ID:-}" && -n "${AWS_SECRET_ACCESS_KEY:-}" ]] \
        || fail "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for $MLFLOW_ARTIFACTS_DESTINATION"
fi
command -v "$mlflow_bin" >/dev/null || fail "no mlflow executable '$mlflow_bin': set MLFLOW_BIN"
if [[ "$backend" == sqlite:///* ]]; then
    mkdir -p "$(dirname "${backend#sqlite:///}")"
fi

# Services never phone home. MLFLOW_S3_ENDPOINT_URL and AWS_* reach boto3 in the server as set.
export MLFLOW_DISABLE_TELEMETRY=true
# anpr uses no server-side jobs (GenAI scorers, trace rollups); MLflow 3.17 would start seven
# huey consumer processes for them, which cost about 10 s of start-up on 2 busy cores.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

args=(
    server
    --backend-store-uri "$backend"
    --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION"
    --host "$host"
    --port "$port"
    --workers "$workers"
)
# Behind a Kubernetes Service or a proxy the Host header is a name the default refuses (403).
[[ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]] && args+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")

echo "mlflow: backend $backend, artifacts $MLFLOW_ARTIFACTS_DESTINATION, http://$host:$port" >&2
exec "$mlflow_bin" "${args[@]}"
