"""Fixtures that start the local stack (infra/local/up.sh) for integration tests.

Session-scoped, shared by every test that asks for them, stopped by infra/local/down.sh at the
end of the session (also when a test fails; and a watchdog stops a stack whose pytest process
was killed):

- ``s3_dask_stack``: SeaweedFS S3 + a dask scheduler + 2 workers (about 6 s to start).
- ``full_stack``: the same plus an ``mlflow server`` (about 20-35 s to start on 2 cores).
- ``local_stack_factory(name, workers=2, mlflow=False, dask=True)``: a stack of your own, for a
  test that breaks it (kills a nanny) or needs another worker count; same name, same stack.
  ``stack.down()`` stops it early.

Each is a ``LocalStack``: ``env`` (the variables of RUN_DIR/env), ``bucket``,
``endpoint_url``, ``scheduler_address``, ``tracking_uri``, ``storage_options``, ``url(key)``,
``s3fs()``, ``client()``, ``worker_pids()``, ``nanny_pids()``, ``kill_worker()``,
``wait_for_workers()``, ``use(monkeypatch)``, ``processes()``, ``down()``. Only tests marked
``integration`` should use them.

The workers run the project's venv, so they import ``anpr_core`` and ``anpr_jobs`` but not test
modules: a task function defined in a test must be nested in the test function (it then
travels by value).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

LOCAL = Path(__file__).resolve().parents[2] / "infra" / "local"
UP, DOWN = LOCAL / "up.sh", LOCAL / "down.sh"
UP_TIMEOUT_S = 180


def script_environ() -> dict[str, str]:
    """The environment for up.sh/down.sh: this interpreter's bin folder first on PATH (so
    `weed`, `dask` and `mlflow` come from the same virtual environment) and no VENV override."""
    env = {k: v for k, v in os.environ.items() if k != "VENV"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def read_env_file(path: Path) -> dict[str, str]:
    """The variables an env file written by up.sh exports (``export KEY=VALUE`` lines)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return env


@dataclass(frozen=True)
class LocalStack:
    """A running local stack: its run folder and the variables of its env file."""

    run_dir: Path
    env: dict[str, str]

    @property
    def bucket(self) -> str:
        """The bucket up.sh created (``anpr``)."""
        return self.env["ANPR_S3_BUCKET"]

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint, ``http://127.0.0.1:PORT``."""
        return self.env["AWS_ENDPOINT_URL"]

    @property
    def scheduler_address(self) -> str:
        """The dask scheduler, ``tcp://127.0.0.1:PORT`` (KeyError without dask)."""
        return self.env["DASK_SCHEDULER_ADDRESS"]

    @property
    def tracking_uri(self) -> str:
        """The mlflow server, ``http://127.0.0.1:PORT`` (KeyError without mlflow)."""
        return self.env["MLFLOW_TRACKING_URI"]

    @property
    def storage_options(self) -> dict:
        """fsspec/s3fs storage options reaching this S3 server (the env alone also does)."""
        return {
            "key": self.env["AWS_ACCESS_KEY_ID"],
            "secret": self.env["AWS_SECRET_ACCESS_KEY"],
            "endpoint_url": self.endpoint_url,
            "client_kwargs": {"region_name": self.env["AWS_DEFAULT_REGION"]},
        }

    def url(self, *parts: str) -> str:
        """``s3://BUCKET/PART/PART...``."""
        return "/".join([f"s3://{self.bucket}", *(p.strip("/") for p in parts)])

    def s3fs(self):
        """A fresh (uncached) s3fs filesystem of this S3 server."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options)

    def client(self, timeout: float = 10):
        """A distributed.Client of the scheduler (not set as the default client); close it."""
        from distributed import Client

        return Client(self.scheduler_address, timeout=timeout, set_as_default=False)

    def nanny_pids(self) -> list[int]:
        """PIDs of the `dask worker` processes up.sh started, one per worker: each runs the
        nanny, which restarts its worker process when that dies. Killing one removes a worker
        for good."""
        files = self.env["ANPR_DASK_NANNY_PID_FILES"].split()
        return [int(Path(f).read_text()) for f in files]

    def worker_pids(self) -> dict[str, int]:
        """PID of each connected worker process (children of the nannies), by worker
        address; killing one makes its nanny start a new one."""
        with self.client() as client:
            return client.run(os.getpid)

    def wait_for_workers(self, n: int | None = None, timeout: float = 60) -> None:
        """Nothing; returns when ``n`` workers (default: as many as started) are connected."""
        wanted = int(self.env["ANPR_LOCAL_WORKERS"]) if n is None else n
        with self.client() as client:
            client.wait_for_workers(wanted, timeout=timeout)

    def kill_worker(self, sig: int = signal.SIGKILL) -> int:
        """The PID of one worker process, which was just sent ``sig`` (its nanny restarts it;
        call ``wait_for_workers()`` before the next test needs every worker)."""
        pid = sorted(self.worker_pids().values())[0]
        os.kill(pid, sig)
        return pid

    def processes(self) -> list:
        """The live processes of this stack (psutil.Process), children of nannies and of
        the mlflow server included: those whose environment carries up.sh's tag."""
        import psutil

        tag = str(self.run_dir.resolve())
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get("ANPR_LOCAL_STACK_TAG") == tag and proc.status() != "zombie":
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Nothing; sets this stack's variables in os.environ for the current test, so
        s3fs, boto3, mlflow and `distributed.Client()` find the stack with no arguments."""
        for key in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(key, raising=False)
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)

    def up_again(self) -> tuple[LocalStack, str]:
        """(the stack as recorded now, up.sh's output) after running up.sh again with the
        options this stack was started with: a no-op when everything answers, else a restart."""
        services = self.env["ANPR_LOCAL_SERVICES"].split()
        output = run_up(
            self.run_dir,
            workers=int(self.env["ANPR_LOCAL_WORKERS"]),
            mlflow="mlflow" in services,
            dask="dask" in services,
        )
        return LocalStack(self.run_dir, read_env_file(self.run_dir / "env")), output

    def down(self) -> None:
        """Nothing; stops the stack (idempotent), leaving no process behind."""
        stop_stack(self.run_dir)


def stop_stack(run_dir: Path) -> None:
    """Nothing; runs down.sh on ``run_dir`` and fails when it reports a process left."""
    stop_stacks([run_dir])


def stop_stacks(run_dirs: list[Path]) -> None:
    """Nothing; runs down.sh on every run dir at once (SeaweedFS takes seconds to stop) and
    fails when one of them reports a process left."""
    downs = [
        subprocess.Popen(
            [str(DOWN), "--run-dir", str(run_dir), "--quiet"],
            env=script_environ(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run_dir in run_dirs
    ]
    errors = [down.communicate(timeout=60)[1].strip() for down in downs]
    failed = [e for down, e in zip(downs, errors, strict=True) if down.returncode != 0]
    if failed:
        raise RuntimeError(f"down.sh failed: {failed}")


def run_up(run_dir: Path, workers: int = 2, mlflow: bool = False, dask: bool = True) -> str:
    """The output of up.sh run on ``run_dir`` (the stack is stopped again if up.sh fails)."""
    argv = [str(UP), "--run-dir", str(run_dir), "--workers", str(workers)]
    argv += ["--watch-pid", str(os.getpid())]
    argv += [] if mlflow else ["--no-mlflow"]
    argv += [] if dask else ["--no-dask"]
    try:
        done = subprocess.run(
            argv, env=script_environ(), capture_output=True, text=True, timeout=UP_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        stop_stack(run_dir)
        raise
    if done.returncode != 0:
        stop_stack(run_dir)
        raise RuntimeError(
            f"up.sh failed ({done.returncode}): {done.stderr.strip()}\n"
            f"logs: {sorted((run_dir / 'logs').glob('*.log'))}"
        )
    return done.stdout


def start_stack(run_dir: Path, workers: int = 2, mlflow: bool = False, dask: bool = True):
    """The LocalStack that up.sh started in ``run_dir``."""
    started = time.monotonic()
    run_up(run_dir, workers=workers, mlflow=mlflow, dask=dask)
    print(f"local stack {run_dir} up in {time.monotonic() - started:.1f} s")
    return LocalStack(run_dir, read_env_file(run_dir / "env"))


@pytest.fixture(scope="session")
def local_stack_factory(tmp_path_factory) -> Iterator[Callable[..., LocalStack]]:
    """A function ``(name, workers=2, mlflow=False, dask=True) -> LocalStack`` starting (once
    per name) a stack in its own run folder; every stack is stopped at the end of the session."""
    stacks: dict[str, LocalStack] = {}

    def make(name: str, workers: int = 2, mlflow: bool = False, dask: bool = True):
        if name not in stacks:
            run_dir = tmp_path_factory.mktemp(f"stack-{name}")
            stacks[name] = start_stack(run_dir, workers=workers, mlflow=mlflow, dask=dask)
        return stacks[name]

    try:
        yield make
    finally:
        stop_stacks([stack.run_dir for stack in stacks.values()])


@pytest.fixture(scope="session")
def s3_dask_stack(local_stack_factory) -> LocalStack:
    """The shared S3 + dask scheduler + 2 workers stack (no mlflow)."""
    return local_stack_factory("s3-dask", workers=2)


@pytest.fixture(scope="session")
def full_stack(local_stack_factory) -> LocalStack:
    """The shared S3 + mlflow server + dask scheduler + 2 workers stack."""
    return local_stack_factory("full", workers=2, mlflow=True)
