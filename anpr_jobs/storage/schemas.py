"""The plate-reads table that ``anpr reprocess`` writes and every other job reads, declared
once."""

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
