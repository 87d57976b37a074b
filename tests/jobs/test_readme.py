"""The README's tour works as written: each command between its tour markers runs, in order,
on synthetic data this test makes, with the exit status 0 (the README cannot drift from the
CLI)."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from anpr_jobs import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_commands() -> list[list[str]]:
    """The ``anpr`` command lines of the README's tour, comments dropped."""
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- tour")
    block = text[text.index("\n", start) : text.index("<!-- /tour -->")]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "anpr", line
            commands.append(words[1:])
    return commands


def test_the_tour_runs_as_written(workdir, anpr):
    commands = tour_commands()
    assert [c[0] for c in commands][:3] == ["synth", "train", "evaluate"]
    assert cli.main(["synth", str(workdir / "scenes"), "--count", "1", "--seed", "5"]) == 0
    assert cli.main(["synth", str(workdir / "crops"), "--count", "1", "--crops"]) == 0
    shutil.copy(next((workdir / "scenes").glob("*.jpg")), workdir / "photo.jpg")
    shutil.copy(next((workdir / "crops" / "images").glob("*.png")), workdir / "plate.png")
    for command in commands:
        status, out, err = anpr(*command)
        assert status == 0, (command, err)
        assert out, command
