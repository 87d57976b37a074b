"""``anpr review labels``: what reviewers confirmed or corrected, as a labeled scenes folder.

Each confirmed or corrected item with a plate box becomes ``<citation_id>.<ext>`` (the capture,
its bytes as archived) and ``<citation_id>.txt`` (``NAME x y w h PLATE``, the format
``anpr train`` reads), so the next model learns from the reviewers. ``reviews.json`` beside them
says where they came from; ``anpr train`` records it in the version's data summary, so a
version says that it learned from reviews.
"""

from __future__ import annotations

import json
import posixpath
from datetime import date
from pathlib import Path

from anpr_core.datasets import IMAGE_SUFFIXES
from anpr_core.errors import ImageError
from anpr_jobs.storage import STATE_SCHEMA, fetch_one, open_url
from anpr_jobs.tickets.outputs import PART_NAME
from anpr_jobs.tickets.publish import nights_run, read_table, state_folder
from anpr_jobs.tickets.reviews import CITING, latest_by_item, load_reviews
from anpr_jobs.trainingdata import REVIEW_MANIFEST


def write_labels(output_url: str, out_dir: str | Path, since: date | None = None) -> dict:
    """The counts of what was written into ``out_dir`` (created): one labeled scene per
    confirmed or corrected item that has a plate box and whose capture can be fetched."""
    fs, root = open_url(output_url)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, skipped, reviewers, nights = 0, {"no plate box": 0, "capture unreadable": 0}, set(), []
    for night in nights_run(fs, root, since):
        latest = latest_by_item(load_reviews(fs, root, night))
        if not latest:
            continue
        nights.append(night)
        path = posixpath.join(state_folder(root, night), PART_NAME)  # every item of the night
        rows = {r["citation_id"]: r for r in read_table(fs, path, STATE_SCHEMA).to_pylist()}
        for citation_id, review in sorted(latest.items()):
            row = rows.get(citation_id)
            if review.decision not in CITING or row is None:
                continue
            if row["box_w"] is None:
                skipped["no plate box"] += 1
                continue
            try:
                data = fetch_one(row["image_key"])
            except ImageError:
                skipped["capture unreadable"] += 1
                continue
            suffix = Path(row["image_key"]).suffix.lower()
            name = f"{citation_id}{suffix if suffix in IMAGE_SUFFIXES else '.jpg'}"
            (out / name).write_bytes(data)
            box = "\t".join(str(row[k]) for k in ("box_x", "box_y", "box_w", "box_h"))
            (out / f"{citation_id}.txt").write_text(
                f"{name}\t{box}\t{review.plate_after}\n", encoding="utf-8"
            )
            written += 1
            reviewers.add(review.reviewer)
    found = {
        "source": output_url,
        "nights": nights,
        "labeled": written,
        "skipped": skipped,
        "reviewers": sorted(reviewers),
    }
    (out / REVIEW_MANIFEST).write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    return found
