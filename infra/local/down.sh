#!/usr/bin/env bash
# Stop every process the local stack in RUN_DIR started, children included (the worker
# processes of dask nannies, mlflow's server workers): SIGTERM, wait up to --timeout seconds,
# then SIGKILL. Processes are found by the ANPR_LOCAL_STACK_TAG=RUN_DIR variable up.sh gives
# them, so nothing of another run dir is touched and no orphan is missed. Removes RUN_DIR/env
# and the PID files; keeps logs and data. Exits 0 when no process of the stack is left.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=$HERE/run
TIMEOUT=15
QUIET=0

while (($#)); do
    case $1 in
        --run-dir) RUN_DIR=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --quiet) QUIET=1; shift ;;
        -h|--help)
            echo "usage: down.sh [--run-dir DIR] [--timeout SECONDS] [--quiet]"
            exit 0 ;;
        *) echo "down.sh: error: unknown option $1" >&2; exit 2 ;;
    esac
done

say() { ((QUIET)) || echo "down.sh: $*"; }

if [[ ! -d $RUN_DIR ]]; then
    say "no run dir $RUN_DIR; nothing to stop"
    exit 0
fi
RUN_DIR=$(cd "$RUN_DIR" && pwd)
TAG="ANPR_LOCAL_STACK_TAG=$RUN_DIR"

# stack_pids: the PIDs of live processes whose environment carries this stack's tag.
stack_pids() {
    local environ pid
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}
        pid=${pid%/environ}
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        if grep -qzxF -- "$TAG" "$environ" 2>/dev/null \
            && [[ $(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
            echo "$pid"
        fi
    done
}

# wait_gone SECONDS: 0 once no process of the stack is left, 1 when time runs out.
wait_gone() {
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        [[ -z $(stack_pids) ]] && return 0
        sleep 0.2
    done
    [[ -z $(stack_pids) ]]
}

mapfile -t pids < <(stack_pids)
if ((${#pids[@]})); then
    say "stopping ${#pids[@]} processes of $RUN_DIR"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    if ! wait_gone "$TIMEOUT"; then
        mapfile -t pids < <(stack_pids)
        say "killing ${#pids[@]} processes still running after ${TIMEOUT} s"
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait_gone 10 || {
            echo "down.sh: error: processes still running: $(stack_pids | tr '\n' ' ')" >&2
            exit 1
        }
    fi
else
    say "no process of $RUN_DIR is running"
fi

# SeaweedFS puts its gRPC sockets in /tmp, named by port; a killed `weed` leaves them there.
if [[ -f $RUN_DIR/weed/ports ]]; then
    for port in $(cat "$RUN_DIR/weed/ports"); do
        rm -f /tmp/seaweedfs-*-grpc-$((port + 10000)).sock
    done
    rm -f "$RUN_DIR/weed/ports"
fi
if [[ -f $RUN_DIR/weed/socket-dir ]]; then
    rm -rf -- "$(cat "$RUN_DIR/weed/socket-dir")"
    rm -f "$RUN_DIR/weed/socket-dir"
fi
rm -f "$RUN_DIR/env" "$RUN_DIR/env.tmp" "$RUN_DIR"/pids/*.pid
say "stopped"
