"""Every table the jobs write, declared once: the plate reads that ``anpr reprocess`` writes
and every other job reads, and the outputs of ``anpr tickets`` and the review desk."""

from __future__ import annotations

import pyarrow as pa

STATUSES = ("ok", "no_plate", "error")
PARTITION_COLUMN = "capture_date"
NULL_PARTITION = "1970-01-01"


def _reads_schema() -> pa.Schema:
    """The schema of one plate-reads file (without the partition column)."""
    utc = pa.timestamp("us", tz="UTC")
    point = pa.struct([("x", pa.float32()), ("y", pa.float32())])
    alternative = pa.struct([("text", pa.string()), ("confidence", pa.float32())])
    plate = pa.struct(
        [
            ("text", pa.string()),
            ("confidence", pa.float32()),
            ("detection_score", pa.float32()),
            ("box_x", pa.int32()),
            ("box_y", pa.int32()),
            ("box_w", pa.int32()),
            ("box_h", pa.int32()),
            ("quad", pa.list_(point)),
            ("char_confidences", pa.list_(pa.float32())),
            ("alternatives", pa.list_(alternative)),
            ("pattern", pa.string()),  # the region pattern the text matches, or null
        ]
    )
    return pa.schema(
        [
            ("image_key", pa.string()),  # full URL of the image: s3://bucket/key or a local path
            ("camera_id", pa.string()),
            ("captured_at", utc),
            ("status", pa.string()),  # ok | no_plate | error
            ("error", pa.string()),  # why, when status is error: "decode: ...", "too_large: ..."
            ("plate", pa.string()),  # the best read's text
            ("confidence", pa.float32()),
            ("detection_score", pa.float32()),
            ("box_x", pa.int32()),
            ("box_y", pa.int32()),
            ("box_w", pa.int32()),
            ("box_h", pa.int32()),
            ("plates", pa.list_(plate)),  # every plate found, best first
            ("image_width", pa.int32()),
            ("image_height", pa.int32()),
            ("region", pa.string()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("pipeline_version", pa.string()),
            # the confidence a ticket needs with this version (null: a version without a
            # calibrator, for which the ticket rule's default applies)
            ("citation_threshold", pa.float32()),
            ("run_id", pa.string()),
            ("processed_at", utc),
            ("elapsed_ms", pa.float32()),
        ]
    )


READS_SCHEMA = _reads_schema()


# The tickets job's outputs (anpr_jobs.tickets): citations, duplicates, review, voided and
# dismissed rows; rejected event values; reviewers' decisions; the job's state of a night.


def _from_reads(*names: str) -> list[pa.Field]:
    """Fields of the reads schema by name (top level first, else of its per-plate struct):
    the evidence carries a read's fields with the reads' own types, so the two cannot drift."""
    plate = READS_SCHEMA.field("plates").type.value_type
    return [
        READS_SCHEMA.field(name) if name in READS_SCHEMA.names else plate.field(name)
        for name in names
    ]


def _evidence_schema() -> pa.Schema:
    """The schema of citations, duplicates and review rows (without the partition column)."""
    utc = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("citation_id", pa.string()),  # stable hash of the event (camera, event, time)
            ("event_id", pa.string()),
            ("camera_id", pa.string()),
            ("captured_at", utc),
            ("captured_local", pa.string()),  # ISO 8601 in the agency's time zone
            ("image_key", pa.string()),
            ("speed", pa.float64()),
            ("speed_limit", pa.float64()),
            ("unit", pa.string()),  # mph | km/h
            ("excess", pa.float64()),  # speed - speed_limit, in ``unit``
            ("reason", pa.string()),  # review only: low_confidence|no_plate|pattern_mismatch|error
            ("duplicate_of", pa.string()),  # duplicates only: the citation_id that was issued
            ("read_status", pa.string()),  # ok | no_plate | error, as in the reads
            ("read_error", pa.string()),
            *_from_reads("plate", "confidence", "detection_score"),
            *_from_reads("box_x", "box_y", "box_w", "box_h", "pattern", "alternatives"),
            *_from_reads("region", "model_name", "model_version", "pipeline_version"),
            ("read_run_id", pa.string()),  # the run that produced the read
            ("min_confidence", pa.float32()),  # the confidence this read needed for a ticket
            ("source", pa.string()),  # model | review: who named the plate of a citation
            ("reviewer", pa.string()),  # who decided on the item (null: nobody yet)
            ("review", pa.string()),  # what they decided: confirm, correct, void, unreadable...
            ("crop_key", pa.string()),  # the crop PNG, relative to OUTPUT_URL (null: no image)
            ("source_file", pa.string()),
            ("source_row", pa.int64()),  # 1-based data row in source_file (header not counted)
            ("run_id", pa.string()),  # this tickets run
            ("generated_at", utc),
        ]
    )


def _rejected_schema() -> pa.Schema:
    """The schema of rejected event values: one row per bad value of an event row."""
    return pa.schema(
        [
            ("file", pa.string()),
            ("row", pa.int64()),  # 1-based data row in the file (header not counted)
            ("column", pa.string()),
            ("value", pa.string()),  # the offending value as text (null when missing)
            ("reason", pa.string()),
            ("event_id", pa.string()),  # when the row has a readable one
            ("run_id", pa.string()),
        ]
    )


EVIDENCE_SCHEMA = _evidence_schema()
REJECTED_SCHEMA = _rejected_schema()


def _reviews_schema() -> pa.Schema:
    utc = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("decision_id", pa.string()),
            ("citation_id", pa.string()),  # the item decided on (review item or citation)
            ("event_id", pa.string()),
            ("decision", pa.string()),  # one of KINDS
            ("plate_before", pa.string()),  # the read the reviewer saw
            ("plate_after", pa.string()),  # the plate the item carries after the decision
            ("reviewer", pa.string()),
            ("decided_at", utc),
            ("reason", pa.string()),  # why (a void needs one; free text otherwise)
        ]
    )


REVIEWS_SCHEMA = _reviews_schema()

STATE_SCHEMA = EVIDENCE_SCHEMA.append(pa.field("outcome", pa.string())).append(
    pa.field("citation_threshold", pa.float32())
)
