"""Progress shown while a long command runs, drawn by tqdm."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class ProgressBar:
    """A ``progress(done, total)`` callback: a tqdm bar redrawn in place on a terminal; on any
    other stream (a log, a pipe) tqdm's meter as a whole line at each tenth of the way, so a
    long run in a log still shows that it is alive, one line at a time."""

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        self.start = time.perf_counter()
        self.last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        if self.stream.isatty():
            self.redraw(done, total)
            return
        tenth = 10 * done // max(total, 1)
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            elapsed = time.perf_counter() - self.start
            meter = tqdm.format_meter(done, total, elapsed, prefix=self.label, ascii=True)
            self.stream.write(meter + "\n")
            self.stream.flush()

    def redraw(self, done: int, total: int) -> None:
        """Nothing; moves the terminal's bar to ``done`` of ``total``, closing it at the end."""
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.label, file=self.stream, unit="img")
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
