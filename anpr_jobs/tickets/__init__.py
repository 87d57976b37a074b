"""Nightly tickets: a night's speed-camera events joined with plate reads become citations.

The job reads like a recipe: load and validate the events, keep the night's (in the agency's
time zone), keep the speeding ones, join them with the plate reads (reading on the spot any
image that has none yet), decide citation / review / duplicate, write the night.

Outputs under OUTPUT_URL, one partition per night (``date=YYYY-MM-DD``), each file written
whole under a deterministic name, so a rerun of the same night replaces it::

    citations/date=D/part-0.parquet    one row per ticket (EVIDENCE_SCHEMA)
    duplicates/date=D/part-0.parquet   same vehicle, same camera, within the dedupe window
    review/date=D/part-0.parquet       speeding, but the read is not good enough: ``reason``
    rejected/date=D/part-0.parquet     event rows that could not be used (REJECTED_SCHEMA)
    voided/date=D/part-0.parquet       citations a reviewer voided, with the reason
    dismissed/date=D/part-0.parquet    review items a reviewer marked unreadable, not a plate
                                       or not a violation
    decisions/date=D/<id>.parquet      every reviewer's decision, one file each (the audit
                                       log, never edited; anpr_jobs.tickets.reviews)
    crops/date=D/<citation_id>.png     the plate (or, with no plate, the scene) of each item
    pages/review-D.html                the self-contained review page of the night
    summaries/D.json                   the night's counts and settings

Defaults (CLI options map one to one to ``Rules`` and ``Night``): the night is the calendar
day D in ``--timezone`` (default UTC); a citation needs speed > limit + ``--tolerance``
(default 5, in the event's own unit: 5 mph or 5 km/h) and a best read with confidence >=
``--min-confidence`` (default 0.8) whose text matches a format pattern of its region; one
vehicle (plate text) caught by one camera several times within ``--dedupe-window`` minutes
(default 10) of its first capture gets one citation, for the highest excess speed.
"""

from anpr_jobs.storage import EVIDENCE_SCHEMA, REJECTED_SCHEMA
from anpr_jobs.tickets.events import Night
from anpr_jobs.tickets.job import run_tickets
from anpr_jobs.tickets.rules import Rules

__all__ = ["EVIDENCE_SCHEMA", "REJECTED_SCHEMA", "Night", "Rules", "run_tickets"]
