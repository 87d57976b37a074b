"""What a night writes: the rows of citations, duplicates, review and rejected events (their
schemas are in ``storage.schemas``), the crops, and each file whole under a deterministic
name."""

from __future__ import annotations

import posixpath
from datetime import datetime
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pyarrow as pa

from anpr_core.errors import ImageError
from anpr_jobs.storage import (
    crop_around,
    fetch_one,
    load_image,
    remove_all,
    write_bytes_atomic,
)
from anpr_jobs.tickets.events import EventsLoad, Night, Rejection
from anpr_jobs.tickets.rules import REASONS, Decision, EarlierCitation, Rules, thresholds_by_version

PARTITION = "date"
PART_NAME = "part-0.parquet"
CROP_MARGIN = 0.15  # of the plate box, on each side, so the whole plate shows in its crop
SCENE_CROP_WIDTH = 640  # px: with no plate box, the crop is the whole scene, shrunk to this


# ---------------------------------------------------------------------------------------------
# Crops


def crop_image(image: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """The plate in ``box`` with a margin, or the whole scene shrunk when there is no box."""
    crop = None if box is None else crop_around(image, box, CROP_MARGIN)
    if crop is not None:
        return crop
    height, width = image.shape[:2]
    if width <= SCENE_CROP_WIDTH:
        return image
    size = (SCENE_CROP_WIDTH, max(1, round(height * SCENE_CROP_WIDTH / width)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def crop_png(image_key: str, box) -> bytes | None:
    """The PNG of the crop of an event's image, or None when the image cannot be read."""
    try:
        image = load_image(fetch_one(image_key))
    except ImageError:
        return None
    ok, encoded = cv2.imencode(".png", crop_image(image, box))
    return encoded.tobytes() if ok else None


# ---------------------------------------------------------------------------------------------
# Output rows


def evidence_row(
    decision: Decision, zone: ZoneInfo, crop_key, run_id, now, rules: Rules = Rules()
) -> dict:
    """The EVIDENCE_SCHEMA row of a decision."""
    event, evidence = decision.event, decision.evidence
    box = evidence.box or (None, None, None, None)
    return {
        "citation_id": decision.citation_id,
        "event_id": event.event_id,
        "camera_id": event.camera_id,
        "captured_at": event.captured_at,
        "captured_local": event.captured_at.astimezone(zone).isoformat(),
        "image_key": event.image_key,
        "speed": event.speed,
        "speed_limit": event.speed_limit,
        "unit": event.unit,
        "excess": event.excess,
        "reason": decision.reason,
        "duplicate_of": decision.duplicate_of,
        "read_status": evidence.status,
        "read_error": evidence.error,
        "plate": evidence.plate,
        "confidence": evidence.confidence,
        "detection_score": evidence.detection_score,
        "box_x": box[0],
        "box_y": box[1],
        "box_w": box[2],
        "box_h": box[3],
        "pattern": evidence.pattern,
        "alternatives": [{"text": t, "confidence": c} for t, c in evidence.alternatives],
        "region": evidence.region,
        "model_name": evidence.model_name,
        "model_version": evidence.model_version,
        "pipeline_version": evidence.pipeline_version,
        "read_run_id": evidence.run_id,
        "min_confidence": rules.threshold_for(evidence),
        "source": decision.source,
        "reviewer": decision.reviewer,
        "review": decision.review,
        "crop_key": crop_key,
        "source_file": event.source_file,
        "source_row": event.source_row,
        "run_id": run_id,
        "generated_at": now,
    }


def rejected_row(rejection: Rejection, run_id: str) -> dict:
    """The REJECTED_SCHEMA row of a rejection."""
    return {
        "file": rejection.file,
        "row": rejection.row,
        "column": rejection.column,
        "value": rejection.value,
        "reason": rejection.reason,
        "event_id": rejection.event_id,
        "run_id": run_id,
    }


# ---------------------------------------------------------------------------------------------
# Writing (each file whole or not at all, under a deterministic name)


def replace_folder(fs, folder: str, files: dict[str, bytes], suffix: str) -> None:
    """Nothing; writes ``files`` (name -> bytes) into ``folder`` and then removes the files
    with ``suffix`` that a previous run left there and this one did not write."""
    for name, data in sorted(files.items()):
        write_bytes_atomic(fs, posixpath.join(folder, name), data)
    if fs.isdir(folder):
        stale = [
            path
            for path in fs.ls(folder, detail=False)
            if (name := posixpath.basename(path)).endswith(suffix)
            and not name.startswith("_")
            and name not in files
        ]
        remove_all(fs, stale)


def night_folder(root: str, dataset: str, night: Night) -> str:
    """The partition folder of ``dataset`` for the night."""
    return posixpath.join(root, dataset, f"{PARTITION}={night.date.isoformat()}")


def earlier_from_outputs(citations: pa.Table, duplicates: pa.Table) -> list[EarlierCitation]:
    """The citations of an earlier night's outputs, each with the first capture of its group
    (the citation and the duplicates of it)."""
    starts: dict[str, datetime] = {}
    for row in duplicates.select(["duplicate_of", "captured_at"]).to_pylist():
        if row["duplicate_of"]:
            known = starts.get(row["duplicate_of"], row["captured_at"])
            starts[row["duplicate_of"]] = min(known, row["captured_at"])
    found = []
    for row in citations.select(["citation_id", "camera_id", "plate", "captured_at"]).to_pylist():
        start = min(row["captured_at"], starts.get(row["citation_id"], row["captured_at"]))
        found.append(EarlierCitation(row["citation_id"], row["camera_id"], row["plate"], start))
    return found


def night_summary(night, rules, loaded: EventsLoad, speeding, read_now, run_id) -> dict:
    """The night's counts and settings that do not depend on decisions; with
    ``decision_counts``, every event row is in exactly one of ``outside_night``,
    ``rejected_rows``, ``not_speeding``, ``citations``, ``duplicates``, ``review``, ``voided``
    and ``dismissed``, or, for a row with no usable time rejected by an earlier night,
    ``rejected_in_earlier_night`` (added by the job)."""
    start, end = night.bounds()
    return {
        "date": night.date.isoformat(),
        "timezone": night.timezone,
        "night_start": start.isoformat(),
        "night_end": end.isoformat(),
        "events_files": loaded.files,
        "ignored_files": loaded.ignored_files,
        "events_rows": loaded.total_rows,
        "outside_night": loaded.outside_night,
        "rejected_rows": loaded.rejected_rows,
        "rejected_values": len(loaded.rejections),
        "in_night": len(loaded.events),
        "not_speeding": len(loaded.events) - len(speeding),
        "speeding": len(speeding),
        "images_read_now": read_now,
        "tolerance": rules.tolerance,
        "min_confidence": rules.min_confidence,  # null: each version's own threshold
        "dedupe_window_min": rules.dedupe_window.total_seconds() / 60,
        "run_id": run_id,
    }


def decision_counts(decisions: list[Decision], rules: Rules) -> dict:
    """The night's counts of each outcome, the thresholds the reads needed, and the number of
    citations expected to name the wrong plate."""
    outcomes = [d.outcome for d in decisions]
    return {
        "citations": outcomes.count("citation"),
        "duplicates": outcomes.count("duplicate"),
        "review": outcomes.count("review"),
        "voided": outcomes.count("voided"),
        "dismissed": outcomes.count("dismissed"),
        "reviewed": sum(d.reviewer is not None for d in decisions),
        "review_by_reason": {
            r: sum(d.reason == r for d in decisions if d.outcome == "review") for r in REASONS
        },
        "min_confidence_by_version": thresholds_by_version(decisions, rules),
        # if confidence is calibrated; a citation a reviewer confirmed or corrected rests on
        # the reviewer, not the model
        "expected_wrong_citations": round(
            sum(
                1 - (d.evidence.confidence or 0)
                for d in decisions
                if d.outcome == "citation" and d.reviewer is None
            ),
            3,
        ),
    }
