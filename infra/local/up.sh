#!/usr/bin/env bash
# Start the local stack on 127.0.0.1 with free ports: SeaweedFS S3 (`weed mini`), an
# `mlflow server` (SQLite backend, artifacts in that S3), a `dask scheduler` and N
# `dask worker` processes (each with a nanny, one thread). Logs, data and PID files go in the
# run folder; when every service answers, RUN_DIR/env is written: `source` it and `anpr`
# commands use the stack with no flags. Idempotent: a stack already up in RUN_DIR with the same
# options is left as it is. Stop it with down.sh --run-dir RUN_DIR.
#
# Processes: pids/weed.pid, pids/mlflow.pid, pids/scheduler.pid and pids/worker-I.pid hold the
# PID of the process started (for a worker: the `dask worker` process, which runs the NANNY; the
# nanny starts the worker process as its child and restarts it when it dies). Every process
# started carries ANPR_LOCAL_STACK_TAG=RUN_DIR in its environment, which is how down.sh finds
# them all, children included.
set -euo pipefail

# One compound command: bash reads it whole before running it, so editing this file while
# it runs (a git checkout during a test run) cannot change what it does half-way.
{
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=$HERE/run
WORKERS=2
WITH_MLFLOW=1
WITH_DASK=1
BUCKET=anpr
TIMEOUT=90
WATCH_PID=

usage() {
    cat <<EOF
usage: up.sh [--run-dir DIR] [--workers N] [--no-mlflow] [--no-dask] [--bucket NAME]
             [--timeout SECONDS] [--watch-pid PID]
Start SeaweedFS S3, mlflow server and a dask scheduler with N workers on 127.0.0.1 (free
ports); write DIR/env (default DIR: infra/local/run, N: 2, bucket: anpr). With --watch-pid,
the stack stops itself (down.sh) when process PID exits, e.g. a test session that was killed.
EOF
}

while (($#)); do
    case $1 in
        --run-dir) RUN_DIR=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --no-mlflow) WITH_MLFLOW=0; shift ;;
        --no-dask) WITH_DASK=0; shift ;;
        --bucket) BUCKET=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --watch-pid) WATCH_PID=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "up.sh: error: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || { echo "up.sh: error: --workers must be >= 1" >&2; exit 2; }
[[ -z $WATCH_PID || -d /proc/$WATCH_PID ]] || {
    echo "up.sh: error: --watch-pid $WATCH_PID: no such process" >&2
    exit 2
}

# The tools' folder: VENV, else the project's own .venv (`make install`), else an active
# virtual environment, else the first python on PATH; the first that has them all is used.
PROJECT_VENV=$(cd "$HERE/../.." && pwd)/.venv
CANDIDATES=()
[[ -n ${VENV:-} ]] && CANDIDATES+=("$VENV (VENV)")
CANDIDATES+=("$PROJECT_VENV (the project's .venv)")
[[ -n ${VIRTUAL_ENV:-} ]] && CANDIDATES+=("$VIRTUAL_ENV (the active virtual environment)")
if command -v python >/dev/null || command -v python3 >/dev/null; then
    ON_PATH=$(dirname "$(dirname "$(command -v python || command -v python3)")")
    CANDIDATES+=("$ON_PATH (python on PATH)")
fi
BIN=
for candidate in "${CANDIDATES[@]}"; do
    dir=${candidate% (*}
    missing=
    for tool in python weed dask mlflow; do
        [[ -x $dir/bin/$tool ]] || missing+=" $tool"
    done
    if [[ -z $missing ]]; then BIN=$dir/bin; break; fi
    if [[ -n ${VENV:-} && $dir == "$VENV" ]]; then  # asked for by name: no other will do
        echo "up.sh: error: VENV=$VENV lacks$missing in $VENV/bin" >&2
        exit 2
    fi
done
if [[ -z $BIN ]]; then
    echo "up.sh: error: no environment with python, weed, dask and mlflow; looked in:" >&2
    for candidate in "${CANDIDATES[@]}"; do
        echo "  ${candidate% (*}/bin (${candidate##* (}" >&2
    done
    echo "  run \`make install\` (it makes the project's .venv) or set VENV" >&2
    exit 2
fi
PY=$BIN/python

mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
# One up.sh at a time per run dir: a second one waits, then finds the stack up.
exec 9>"$RUN_DIR/.lock"
flock -w "$TIMEOUT" 9 || { echo "up.sh: error: another up.sh holds $RUN_DIR/.lock" >&2; exit 1; }
SERVICES="s3"
((WITH_DASK)) && SERVICES+=" dask"
((WITH_MLFLOW)) && SERVICES+=" mlflow"

if [[ -f $RUN_DIR/env ]]; then
    # shellcheck disable=SC1091
    recorded=$(. "$RUN_DIR/env" && echo "${ANPR_LOCAL_SERVICES:-} ${ANPR_LOCAL_WORKERS:-} ${ANPR_S3_BUCKET:-}")
    if [[ $recorded == "$SERVICES $WORKERS $BUCKET" ]] && "$PY" "$HERE/probe.py" check "$RUN_DIR/env"; then
        echo "up.sh: the stack in $RUN_DIR is already up ($SERVICES); source $RUN_DIR/env"
        exit 0
    fi
    echo "up.sh: restarting the stack in $RUN_DIR (options changed or a service does not answer)"
fi
"$HERE/down.sh" --run-dir "$RUN_DIR" --quiet

mkdir -p "$RUN_DIR/logs" "$RUN_DIR/pids" "$RUN_DIR/weed/data" "$RUN_DIR/dask" "$RUN_DIR/mlflow"

on_failure() {
    echo "up.sh: error: the stack did not come up; logs in $RUN_DIR/logs; stopping it" >&2
    "$HERE/down.sh" --run-dir "$RUN_DIR" --quiet || true
}
trap on_failure ERR

# start NAME VAR=VALUE... -- COMMAND...: runs COMMAND detached (own session, stdin closed,
# output to logs/NAME.log) with the stack's tag and the given variables; records its PID.
start() {
    local name=$1; shift
    local vars=()
    while [[ $1 != -- ]]; do vars+=("$1"); shift; done
    shift
    env ANPR_LOCAL_STACK_TAG="$RUN_DIR" "${vars[@]}" setsid "$@" \
        </dev/null >"$RUN_DIR/logs/$name.log" 2>&1 9>&- &
    echo $! >"$RUN_DIR/pids/$name.pid"
}

# Test credentials of this loopback-only server; nothing else accepts them. A session token or
# profile from the caller's shell would be sent along and spoil the signatures.
unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_PROFILE
export AWS_ACCESS_KEY_ID=anpr-local
export AWS_SECRET_ACCESS_KEY=anpr-local-secret
export AWS_DEFAULT_REGION=us-east-1
export MLFLOW_DISABLE_TELEMETRY=true
# A second identity may only read and list: what an agency's read-only archive key can do, so
# tests see a real "access denied" on writes.
READER_KEY_ID=anpr-reader
READER_SECRET=anpr-reader-secret
cat >"$RUN_DIR/weed/s3.json" <<EOF
{"identities": [{"name": "anpr-local",
  "credentials": [{"accessKey": "$AWS_ACCESS_KEY_ID", "secretKey": "$AWS_SECRET_ACCESS_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
 {"name": "anpr-reader",
  "credentials": [{"accessKey": "$READER_KEY_ID", "secretKey": "$READER_SECRET"}],
  "actions": ["Read", "List"]}]}
EOF

# SeaweedFS: every port free, each with port+10000 free for its gRPC twin; retried with new
# ports when another process takes one between the choice and the bind.
for attempt in 1 2 3; do
    # Unix socket paths are limited to 107 bytes: use a short folder when the run dir is deep.
    SOCK_DIR=$RUN_DIR/weed
    if ((${#SOCK_DIR} > 80)); then
        SOCK_DIR=$(mktemp -d /tmp/anpr-weed.XXXXXX)
        echo "$SOCK_DIR" >"$RUN_DIR/weed/socket-dir"
    fi
    ports=$("$PY" "$HERE/probe.py" free-ports 7 --pairs)
    echo "$ports" >"$RUN_DIR/weed/ports"
    read -r P_MASTER P_VOLUME P_FILER P_S3 P_ADMIN P_ICEBERG P_LANCE <<<"$ports"
    S3_ENDPOINT=http://127.0.0.1:$P_S3
    start weed -- "$BIN/weed" -logdir="$RUN_DIR/logs" mini \
        -dir="$RUN_DIR/weed/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
        -s3.config="$RUN_DIR/weed/s3.json" -webdav=false -admin.ui=false \
        -master.port="$P_MASTER" -volume.port="$P_VOLUME" -filer.port="$P_FILER" \
        -s3.port="$P_S3" -admin.port="$P_ADMIN" -s3.port.iceberg="$P_ICEBERG" \
        -s3.port.lance="$P_LANCE" \
        -filer.localSocket="$SOCK_DIR/filer.sock" -s3.localSocket="$SOCK_DIR/s3.sock"
    if "$PY" "$HERE/probe.py" s3 "$S3_ENDPOINT" "$BUCKET" --timeout "$TIMEOUT" \
        --pid "$(cat "$RUN_DIR/pids/weed.pid")"; then
        break
    fi
    ((attempt < 3)) || false
    echo "up.sh: SeaweedFS did not start (attempt $attempt); retrying with other ports" >&2
    "$HERE/down.sh" --run-dir "$RUN_DIR" --quiet
done
echo "up.sh: S3 (SeaweedFS) at $S3_ENDPOINT, bucket s3://$BUCKET"

if [[ -n $WATCH_PID ]]; then
    start watchdog -- bash -c 'tail --pid="$1" -f /dev/null
        exec env -u ANPR_LOCAL_STACK_TAG "$2" --run-dir "$3" --quiet' \
        watchdog "$WATCH_PID" "$HERE/down.sh" "$RUN_DIR"
fi

S3_VARS=(AWS_ENDPOINT_URL="$S3_ENDPOINT" MLFLOW_S3_ENDPOINT_URL="$S3_ENDPOINT")


if ((WITH_MLFLOW)); then
    P_MLFLOW=$("$PY" "$HERE/probe.py" free-ports 1)
    MLFLOW_URI=http://127.0.0.1:$P_MLFLOW
    start mlflow "${S3_VARS[@]}" -- "$BIN/mlflow" server --host 127.0.0.1 --port "$P_MLFLOW" \
        --workers 1 --backend-store-uri "sqlite:///$RUN_DIR/mlflow/mlflow.db" \
        --artifacts-destination "s3://$BUCKET/mlflow"
fi

# Workers find S3 and, with mlflow, the tracking server (to load models:/ URIs) by themselves.
DASK_VARS=("${S3_VARS[@]}" DASK_TEMPORARY_DIRECTORY="$RUN_DIR/dask")
((WITH_MLFLOW)) && DASK_VARS+=(MLFLOW_TRACKING_URI="$MLFLOW_URI")

if ((WITH_DASK)); then
    rm -f "$RUN_DIR/dask/scheduler.json"
    start scheduler "${DASK_VARS[@]}" -- "$BIN/dask" scheduler --host 127.0.0.1 --port 0 \
        --dashboard-address 127.0.0.1:0 --scheduler-file "$RUN_DIR/dask/scheduler.json" \
        --no-show
    PID_FILES=()
    for ((i = 1; i <= WORKERS; i++)); do
        start "worker-$i" "${DASK_VARS[@]}" -- "$BIN/dask" worker \
            --scheduler-file "$RUN_DIR/dask/scheduler.json" --name "worker-$i" \
            --nthreads 1 --nanny --host 127.0.0.1 --dashboard-address 127.0.0.1:0 \
            --death-timeout 60 \
            --local-directory "$RUN_DIR/dask/worker-$i"
        PID_FILES+=("$RUN_DIR/pids/worker-$i.pid")
    done
    scheduler=$("$PY" "$HERE/probe.py" dask "$RUN_DIR/dask/scheduler.json" "$WORKERS" \
        --timeout "$TIMEOUT" --pid "$(cat "$RUN_DIR/pids/scheduler.pid")")
    read -r DASK_ADDRESS DASK_DASHBOARD_PORT <<<"$scheduler"
    echo "up.sh: dask scheduler at $DASK_ADDRESS with $WORKERS workers," \
        "dashboard http://127.0.0.1:$DASK_DASHBOARD_PORT/status"
fi

if ((WITH_MLFLOW)); then
    "$PY" "$HERE/probe.py" http "$MLFLOW_URI/health" --timeout "$TIMEOUT" \
        --pid "$(cat "$RUN_DIR/pids/mlflow.pid")"
    echo "up.sh: mlflow server at $MLFLOW_URI, artifacts in s3://$BUCKET/mlflow"
fi

# export NAME VALUE: one line of the env file, the value quoted for the shell.
line() { printf 'export %s=%q\n' "$1" "$2"; }
{
    echo "# The local stack started by infra/local/up.sh on $(date -u +%FT%TZ); source this file."
    echo "unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_PROFILE"
    line ANPR_LOCAL_RUN_DIR "$RUN_DIR"
    line ANPR_LOCAL_SERVICES "$SERVICES"
    line ANPR_LOCAL_WORKERS "$WORKERS"
    line ANPR_S3_BUCKET "$BUCKET"
    line AWS_ENDPOINT_URL "$S3_ENDPOINT"
    line MLFLOW_S3_ENDPOINT_URL "$S3_ENDPOINT"
    line AWS_ACCESS_KEY_ID "$AWS_ACCESS_KEY_ID"
    line AWS_SECRET_ACCESS_KEY "$AWS_SECRET_ACCESS_KEY"
    line AWS_DEFAULT_REGION "$AWS_DEFAULT_REGION"
    line ANPR_S3_READER_KEY_ID "$READER_KEY_ID"
    line ANPR_S3_READER_SECRET "$READER_SECRET"
    line MLFLOW_DISABLE_TELEMETRY true
    line ANPR_WEED_PID_FILE "$RUN_DIR/pids/weed.pid"
    if ((WITH_DASK)); then
        line DASK_SCHEDULER_ADDRESS "$DASK_ADDRESS"
        line ANPR_DASK_DASHBOARD_URL "http://127.0.0.1:$DASK_DASHBOARD_PORT/status"
        line ANPR_DASK_SCHEDULER_PID_FILE "$RUN_DIR/pids/scheduler.pid"
        # PID files of the nannies (`dask worker` processes); each nanny's child is the worker.
        line ANPR_DASK_NANNY_PID_FILES "${PID_FILES[*]}"
    fi
    if ((WITH_MLFLOW)); then
        line MLFLOW_TRACKING_URI "$MLFLOW_URI"
        line ANPR_MLFLOW_PID_FILE "$RUN_DIR/pids/mlflow.pid"
    fi
} >"$RUN_DIR/env.tmp"
mv "$RUN_DIR/env.tmp" "$RUN_DIR/env"
trap - ERR
echo "up.sh: ready; source $RUN_DIR/env"
exit
}
