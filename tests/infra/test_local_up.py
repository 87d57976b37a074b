"""infra/local/up.sh finds its tools: VENV, else the project's .venv, else an active virtual
environment, else python on PATH; when none has them, the error names every place it looked.
(Starting the stack itself is tests/integration/test_local_stack.py.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

UP = Path(__file__).resolve().parents[2] / "infra" / "local" / "up.sh"


def up(env: dict, script: Path = UP) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), "--workers", "1"], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_a_venv_named_by_hand_must_have_the_tools(tmp_path):
    done = up({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VENV": str(tmp_path / "v")})
    assert done.returncode == 2
    assert f"VENV={tmp_path / 'v'} lacks python weed dask mlflow" in done.stderr


def test_without_any_environment_the_error_says_where_it_looked(tmp_path):
    project = tmp_path / "project"
    (project / "infra" / "local").mkdir(parents=True)
    script = project / "infra" / "local" / "up.sh"
    shutil.copy(UP, script)
    active = tmp_path / "active"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VIRTUAL_ENV": str(active)}
    done = up(env, script)
    assert done.returncode == 2 and "looked in:" in done.stderr
    assert f"{project}/.venv/bin (the project's .venv)" in done.stderr
    assert f"{active}/bin (the active virtual environment)" in done.stderr
    assert "make install" in done.stderr
