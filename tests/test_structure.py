"""The layout a newcomer relies on (docs/architecture.md): the pipeline knows nothing of the
jobs, a job never imports another job (only the shared modules), no module outgrows one
reading."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOBS = {"reprocess", "tickets", "train", "evaluate", "compare", "recognize"}  # one per command
ENTRY_POINTS = {"cli", "demo"}  # they compose the jobs
MAX_LINES = 400
SERVICES = ("dask", "distributed", "fsspec", "s3fs", "mlflow", "pyarrow", "anpr_jobs")


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def top(path: Path) -> str:
    """The first name under ``jobs/`` of a module: ``tickets`` for anpr_jobs/tickets/rules.py."""
    return path.relative_to(ROOT / "anpr_jobs").with_suffix("").parts[0]


def jobs_imported(path: Path) -> set[str]:
    return {m.split(".")[1] for m in imported(path) if m.startswith("anpr_jobs.")}


@pytest.mark.parametrize("path", modules("anpr_jobs"), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_job_imports_no_other_job_and_shared_modules_import_no_job(path):
    mine = top(path)
    if mine in ENTRY_POINTS:
        return
    others = jobs_imported(path) - {mine}
    if mine in JOBS:
        assert not others & (JOBS | ENTRY_POINTS), f"{mine} imports the jobs {others & JOBS}"
    else:
        assert not others & (JOBS | ENTRY_POINTS), f"shared {mine} imports {others & JOBS}"


@pytest.mark.parametrize("path", modules("anpr_core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pipeline_imports_no_service(path):
    used = {m.split(".")[0] for m in imported(path)}
    assert not used & set(SERVICES), f"{path.name} imports {used & set(SERVICES)}"


@pytest.mark.parametrize("path", modules("anpr_jobs"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_jobs_module_outgrows_one_reading(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines"
