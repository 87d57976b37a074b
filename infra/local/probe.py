"""Helpers of infra/local/up.sh: free loopback ports and readiness probes of the local stack.

Run as ``python probe.py COMMAND ...``; each command prints its result on stdout and exits 0,
or prints one line on stderr and exits 1. It uses only what the project installs (botocore via
s3fs, distributed), so it runs from the project's virtual environment.

    free-ports N [--pairs]        N free TCP ports on 127.0.0.1; with --pairs each P also has
                                  P+10000 free (SeaweedFS puts its gRPC ports there)
    s3 ENDPOINT BUCKET            waits until an authenticated request succeeds, then creates
                                  BUCKET (credentials from AWS_ACCESS_KEY_ID/..._SECRET_...)
    dask SCHEDULER_FILE N         waits for the scheduler and N workers; prints
                                  "ADDRESS DASHBOARD_PORT"
    http URL                      waits until URL answers 200
    check ENV_FILE                exit 0 when every service listed in ENV_FILE answers now

The waiting commands take ``--timeout SECONDS`` and ``--pid PID`` (stop waiting as soon as
that process has exited: the service died, usually because a port was taken).
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

GRPC_OFFSET = 10000
PORT_RANGE = (20000, 55000)


def port_is_free(port: int) -> bool:
    """True when a TCP socket can bind 127.0.0.1:port right now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, pairs: bool = False) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1; with ``pairs`` each ``P + GRPC_OFFSET`` is
    free too and no pair overlaps another."""
    chosen: list[int] = []
    taken: set[int] = set()
    rng = random.SystemRandom()
    for _ in range(100 * count):
        if len(chosen) == count:
            break
        port = rng.randrange(*PORT_RANGE)
        needed = [port, port + GRPC_OFFSET] if pairs else [port]
        if taken.intersection(needed) or not all(port_is_free(p) for p in needed):
            continue
        chosen.append(port)
        taken.update(needed)
    if len(chosen) < count:
        raise RuntimeError(f"found only {len(chosen)} of {count} free ports on 127.0.0.1")
    return chosen


def process_alive(pid: int | None) -> bool:
    """True when ``pid`` is None or names a live, non-zombie process."""
    if pid is None:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_for(what: str, attempt: Callable[[], object], timeout: float, pid: int | None) -> object:
    """The first result of ``attempt()`` that does not raise, retried until ``timeout`` seconds
    pass or process ``pid`` exits (then RuntimeError naming ``what`` and the last error)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not process_alive(pid):
            raise RuntimeError(f"{what}: process {pid} exited (last error: {last})")
        try:
            return attempt()
        except Exception as error:  # noqa: BLE001 - any failure means "not ready yet"
            last = error
        time.sleep(0.25)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s (last error: {last})")


def s3_client(endpoint: str):
    """A botocore S3 client of ``endpoint`` with the credentials of the environment."""
    import botocore.config
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(
            connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}
        ),
    )


def s3_ready(endpoint: str, bucket: str, timeout: float, pid: int | None) -> None:
    """Nothing; waits until the S3 server answers an authenticated request, then makes sure
    ``bucket`` exists (SeaweedFS answers 403 while it is still starting)."""
    client = s3_client(endpoint)
    wait_for(f"S3 at {endpoint}", client.list_buckets, timeout, pid)

    def create() -> None:
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in names:
            client.create_bucket(Bucket=bucket)
        client.head_bucket(Bucket=bucket)

    wait_for(f"bucket s3://{bucket}", create, timeout, pid)


def dask_ready(scheduler_file: str, workers: int, timeout: float, pid: int | None) -> str:
    """``"ADDRESS DASHBOARD_PORT"`` of the scheduler described by ``scheduler_file`` once
    ``workers`` workers are connected (DASHBOARD_PORT is 0 without a dashboard)."""
    from distributed import Client

    wait_for(f"scheduler file {scheduler_file}", Path(scheduler_file).read_text, timeout, pid)

    def connect() -> Client:
        return Client(scheduler_file=scheduler_file, timeout=5)

    client = wait_for("dask scheduler", connect, timeout, pid)
    try:
        client.wait_for_workers(workers, timeout=timeout)
        info = client.scheduler_info()
        dashboard = info.get("services", {}).get("dashboard", 0)
        return f"{info['address']} {dashboard}"
    finally:
        client.close()


def http_ok(url: str, timeout: float = 2) -> None:
    """Nothing; raises unless GET ``url`` answers 200."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")


def read_env_file(path: str | Path) -> dict[str, str]:
    """The variables an env file written by up.sh exports (``export KEY=VALUE`` lines)."""
    env: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return env


def stack_answers(env: dict[str, str]) -> None:
    """Nothing; raises unless every service recorded in ``env`` answers now."""
    services = env.get("ANPR_LOCAL_SERVICES", "").split()
    if "s3" in services:
        os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
        s3_client(env["AWS_ENDPOINT_URL"]).head_bucket(Bucket=env["ANPR_S3_BUCKET"])
    if "mlflow" in services:
        http_ok(env["MLFLOW_TRACKING_URI"] + "/health")
    if "dask" in services:
        from distributed import Client

        with Client(env["DASK_SCHEDULER_ADDRESS"], timeout=3) as client:
            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            wanted = int(env["ANPR_LOCAL_WORKERS"])
            if workers < wanted:
                raise RuntimeError(f"{workers} of {wanted} dask workers connected")


def main(argv: list[str] | None = None) -> int:
    """The exit status of one probe command (0 ready, 1 not)."""
    parser = argparse.ArgumentParser(prog="probe.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ports = sub.add_parser("free-ports")
    ports.add_argument("count", type=int)
    ports.add_argument("--pairs", action="store_true")
    for name, params in {
        "s3": ["endpoint", "bucket"],
        "dask": ["scheduler_file", "workers"],
        "http": ["url"],
    }.items():
        command = sub.add_parser(name)
        for param in params:
            command.add_argument(param)
        command.add_argument("--timeout", type=float, default=60)
        command.add_argument("--pid", type=int)
    sub.add_parser("check").add_argument("env_file")
    args = parser.parse_args(argv)
    try:
        if args.command == "free-ports":
            print(" ".join(map(str, free_ports(args.count, args.pairs))))
        elif args.command == "s3":
            s3_ready(args.endpoint, args.bucket, args.timeout, args.pid)
        elif args.command == "dask":
            print(dask_ready(args.scheduler_file, int(args.workers), args.timeout, args.pid))
        elif args.command == "http":
            wait_for(args.url, lambda: http_ok(args.url), args.timeout, args.pid)
        else:
            stack_answers(read_env_file(args.env_file))
    except Exception as error:  # noqa: BLE001 - one line for the shell script, whatever failed
        print(f"probe {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
