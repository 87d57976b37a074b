"""Progress shown while a long command runs."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """A one-line progress bar on stderr: redrawn in place on a terminal; elsewhere (a log, a
    pipe) a line at each tenth of the way, so a long run still shows it is alive."""

    def __init__(self, label: str, width: int = 30, stream=None):
        self.label = label
        self.width = width
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        interactive = self.stream.isatty()
        tenth = 10 * done // max(total, 1)
        if not interactive and tenth == self.last_tenth:
            return
        self.last_tenth = tenth
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        end = "\n" if done >= total or not interactive else ""
        start = "\r" if interactive else ""
        self.stream.write(f"{start}{self.label} [{bar}] {done}/{total} {elapsed:.1f} s{end}")
        self.stream.flush()
