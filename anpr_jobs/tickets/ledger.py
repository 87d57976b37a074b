"""The rejection ledger under OUTPUT_URL: which night rejected an event row that has no usable
time, so that row is rejected once, by the first night run over its file, and by that night
again on every rerun."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable
from dataclasses import replace

from anpr_jobs.storage import write_bytes_atomic
from anpr_jobs.tickets.events import EventsLoad, Night

REJECTION_LEDGER = "_state/rejections"  # under OUTPUT_URL: which night rejected which row


def ledger_path(root: str, file: str) -> str:
    """The ledger of one events file: the night each of its unplaced rows was rejected in."""
    digest = hashlib.sha256(file.encode("utf-8")).hexdigest()[:20]
    return posixpath.join(root, REJECTION_LEDGER, f"{digest}.json")


def read_ledgers(fs, root: str, files: Iterable[str]) -> dict[str, dict[str, str]]:
    """``{file: {row: night}}`` of the rows rejected so far, per events file."""
    ledgers = {}
    for file in files:
        path = ledger_path(root, file)
        ledgers[file] = json.loads(fs.cat_file(path))["rows"] if fs.isfile(path) else {}
    return ledgers


def place_rejections(
    loaded: EventsLoad, ledgers: dict[str, dict[str, str]], night: Night
) -> tuple[EventsLoad, dict[str, dict[str, str]], int]:
    """The night's rejections without the unplaced rows an earlier night already rejected,
    the ledgers with this night's unplaced rows added, and how many rows were left out.

    A row whose time cannot be read belongs to no night: it is rejected once, by the first
    night run over its file, and that night keeps it on every rerun."""
    day = night.date.isoformat()
    elsewhere = {
        (file, row)
        for file, row in loaded.unplaced
        if ledgers.get(file, {}).get(str(row), day) != day
    }
    updated = {file: dict(rows) for file, rows in ledgers.items()}
    for file, row in loaded.unplaced - elsewhere:
        updated.setdefault(file, {})[str(row)] = day
    kept = [r for r in loaded.rejections if (r.file, r.row) not in elsewhere]
    placed = replace(
        loaded,
        rejections=kept,
        rejected_rows=loaded.rejected_rows - len(elsewhere),
        unplaced=loaded.unplaced - elsewhere,
    )
    return placed, updated, len(elsewhere)


def write_ledgers(fs, root: str, before: dict, after: dict) -> None:
    """Nothing; writes the ledgers that changed."""
    for file, rows in sorted(after.items()):
        if rows != before.get(file, {}):
            ordered = dict(sorted(rows.items(), key=lambda item: int(item[0])))
            data = json.dumps({"file": file, "rows": ordered}, indent=1)
            write_bytes_atomic(fs, ledger_path(root, file), data.encode("utf-8"))
