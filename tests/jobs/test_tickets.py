"""`anpr tickets`: the citation rules, the night in the agency's time zone, deduplication,
rejected event rows, reruns, and reading images that have no read yet with a real model.

Images are synthetic scenes written to disk; plate reads are tables in READS_SCHEMA (the
reprocess job's output), partitioned as that job writes them, with the scene's true plate and
box; events are CSV or Parquet files as a camera system exports them.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cv2
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from anpr_jobs import tickets
from anpr_jobs.cluster import image_reader
from anpr_jobs.storage import NULL_PARTITION, READS_SCHEMA

DAY = date(2026, 11, 24)
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
N_SCENES = 6
OUTCOME_COUNTS = ("outside_night", "rejected_rows", "not_speeding", "citations", "duplicates")
REVIEWED_COUNTS = ("voided", "dismissed")


def read_row(key: str, plate="ABC1234", confidence=0.95, pattern="@@@####", status="ok", box=None):
    """A plate-reads row (READS_SCHEMA) as the reprocess job writes it for one image."""
    box = box or (10, 20, 120, 60)
    best = {
        "text": plate,
        "confidence": confidence,
        "detection_score": 0.9,
        "box_x": box[0],
        "box_y": box[1],
        "box_w": box[2],
        "box_h": box[3],
        "quad": [{"x": 0.0, "y": 0.0}] * 4,
        "char_confidences": [confidence] * len(plate or ""),
        "alternatives": [
            {"text": plate, "confidence": confidence},
            {"text": "X", "confidence": 0.1},
        ],
        "pattern": pattern,
    }
    row = {
        "image_key": key,
        "camera_id": "cam1",
        "captured_at": NOON,
        "status": status,
        "region": "us",
        "model_name": "anpr-char-classifier-us",
        "model_version": "3",
        "pipeline_version": "0.1.0",
        "run_id": "reprocess-run",
        "processed_at": NOON,
        "elapsed_ms": 80.0,
    }
    if status == "error":
        return row | {"error": "decode: not a JPEG", "plates": []}
    if status == "no_plate":
        return row | {"plates": []}
    return row | {
        "plate": plate,
        "confidence": confidence,
        "detection_score": 0.9,
        "box_x": box[0],
        "box_y": box[1],
        "box_w": box[2],
        "box_h": box[3],
        "plates": [best],
    }


def write_reads(folder: Path, rows: list[dict]) -> Path:
    """``folder`` holding ``rows`` as a reads dataset (Hive partitions, a summary beside)."""
    for day, part in (("2026-11-24", rows[::2]), (NULL_PARTITION, rows[1::2])):
        (folder / f"capture_date={day}").mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.Table.from_pylist(part, schema=READS_SCHEMA),
            folder / f"capture_date={day}" / "part-00000.parquet",
        )
    (folder / "_summary.json").write_text("{}")
    return folder


def event(event_id, key, speed, at=NOON, limit=50, unit="mph", camera="cam1") -> dict:
    """One capture event as the camera system exports it."""
    return {
        "event_id": event_id,
        "camera_id": camera,
        "captured_at": at.isoformat() if isinstance(at, datetime) else at,
        "image_key": key,
        "speed": speed,
        "speed_limit": limit,
        "unit": unit,
    }


def write_events(path: Path, rows: list[dict]) -> Path:
    """``path`` (.csv or .parquet) holding the events ``rows``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        import pandas as pd

        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def never_read(keys):
    raise AssertionError(f"images re-read although their reads exist: {keys}")


def run(tmp_path, events, reads, day=DAY, timezone="UTC", read_images=never_read, **rules):
    """The summary of a tickets run over ``events`` and ``reads`` rows, output in tmp_path/out."""
    events_url = write_events(tmp_path / "events" / "events.csv", events)
    reads_url = write_reads(tmp_path / "reads", reads)
    return night_run(tmp_path, day, events_url, reads_url, read_images, timezone, **rules)


def night_run(
    tmp_path, day, events_url, reads_url, read_images=never_read, timezone="UTC", **rules
):
    """The summary of one night's run over events and reads already on disk."""
    return tickets.run_tickets(
        tickets.Night(day, timezone),
        str(events_url),
        str(reads_url),
        str(tmp_path / "out"),
        read_images,
        tickets.Rules(**rules),
    )


def output(tmp_path, dataset, day=DAY) -> list[dict]:
    """The rows of one output dataset for a night, read back as a Hive dataset."""
    folder = tmp_path / "out" / dataset
    table = pads.dataset(folder, format="parquet", partitioning="hive").to_table()
    rows = [r for r in table.to_pylist() if str(r["date"]) == day.isoformat()]
    return sorted(rows, key=lambda r: (r.get("captured_at") or 0, r.get("row") or 0))


def by_event(rows: list[dict]) -> dict[str, dict]:
    return {r["event_id"]: r for r in rows}


def assert_every_row_counted(summary: dict) -> None:
    counted = sum(summary[k] for k in (*OUTCOME_COUNTS, *REVIEWED_COUNTS)) + summary["review"]
    assert counted + summary["rejected_in_earlier_night"] == summary["events_rows"]


def test_speed_threshold_edges_in_each_events_unit(tmp_path, scenes):
    keys = [s["key"] for s in scenes]
    plates = ["AAA1111", "BBB2222", "CCC3333", "DDD4444", "EEE5555", "FFF6666"]
    events = [
        event("at-mph-tolerance", keys[0], 55, limit=50, unit="mph"),  # 50 + 5: not over
        event("over-mph", keys[1], 55.1, limit=50, unit="mph"),
        event("at-kmh-tolerance", keys[2], 85, limit=80, unit="km/h"),
        event("over-kmh", keys[3], 85.5, limit=80, unit="KM/H "),
        event("under", keys[4], 30, limit=50),
        event("way-over", keys[5], 90, limit=50),
    ]
    reads = [read_row(k, p) for k, p in zip(keys, plates, strict=True)]
    summary = run(tmp_path, events, reads)

    cited = by_event(output(tmp_path, "citations"))
    assert set(cited) == {"over-mph", "over-kmh", "way-over"}
    assert cited["over-kmh"]["unit"] == "km/h" and cited["over-kmh"]["excess"] == 5.5
    assert cited["over-mph"]["plate"] == "BBB2222" and cited["over-mph"]["model_version"] == "3"
    assert summary["not_speeding"] == 3 and summary["citations"] == 3
    assert_every_row_counted(summary)

    stricter = run(tmp_path, events, reads, tolerance=0)
    assert stricter["citations"] == 5  # only "under" is within its limit
    assert len(output(tmp_path, "citations")) == 5


def test_reads_that_cannot_make_a_ticket_go_to_review_with_their_reason(tmp_path, scenes):
    keys = [s["key"] for s in scenes]
    events = [event(f"e{i}", key, 70, at=NOON + timedelta(minutes=i)) for i, key in enumerate(keys)]
    reads = [
        read_row(keys[0], "AAA1111", confidence=0.8),  # exactly the threshold: cited
        read_row(keys[1], "BBB2222", confidence=0.79),
        read_row(keys[2], "CCC3333", pattern=None),
        read_row(keys[3], status="no_plate"),
        read_row(keys[4], status="error"),
        read_row(keys[5], "FFF6666", confidence=0.9),
    ]
    summary = run(tmp_path, events, reads)

    review = by_event(output(tmp_path, "review"))
    assert {e: r["reason"] for e, r in review.items()} == {
        "e1": "low_confidence",
        "e2": "pattern_mismatch",
        "e3": "no_plate",
        "e4": "error",
    }
    assert review["e4"]["read_error"] == "decode: not a JPEG"
    assert review["e1"]["alternatives"][0] == {"text": "BBB2222", "confidence": pytest.approx(0.79)}
    assert set(by_event(output(tmp_path, "citations"))) == {"e0", "e5"}
    assert summary["review_by_reason"] == {
        "low_confidence": 1,
        "no_plate": 1,
        "pattern_mismatch": 1,
        "error": 1,
    }

    # A read stored as 0.9 (float32) meets --min-confidence 0.9.
    run(tmp_path, events, reads, min_confidence=0.9)
    assert set(by_event(output(tmp_path, "citations"))) == {"e5"}


def test_the_night_is_the_calendar_day_in_the_agency_time_zone(tmp_path, scenes):
    key = scenes[0]["key"]
    at = {
        "before-midnight-utc": "2026-11-24T04:59:59+00:00",  # 23:59:59 on the 23rd in New York
        "local-midnight": "2026-11-24T00:00:00-05:00",
        "late-local": "2026-11-24T23:59:59-05:00",
        "late-local-in-utc": "2026-11-25T04:59:59Z",
        "next-local-midnight": "2026-11-25T05:00:00Z",
        "in-paris": "2026-11-25T01:30:00+01:00",  # 19:30 in New York: same instant, any offset
    }
    events = [event(name, key, 70, at=ts, camera=name) for name, ts in at.items()]
    summary = run(tmp_path, events, [read_row(key)], timezone="America/New_York")

    cited = by_event(output(tmp_path, "citations"))
    assert set(cited) == {"local-midnight", "late-local", "late-local-in-utc", "in-paris"}
    assert cited["late-local-in-utc"]["captured_local"] == "2026-11-24T23:59:59-05:00"
    assert summary["outside_night"] == 2 and summary["night_end"] == "2026-11-25T05:00:00+00:00"

    utc = run(tmp_path, events, [read_row(key)], timezone="UTC")
    assert utc["in_night"] == 2  # before-midnight-utc and local-midnight (05:00Z)


def test_a_daylight_saving_night_has_25_hours(tmp_path, scenes):
    key = scenes[0]["key"]
    events = [
        event("first-0130", key, 70, at="2026-11-01T01:30:00-04:00"),
        event("second-0130", key, 70, at="2026-11-01T01:30:00-05:00"),
        event("last-second", key, 70, at="2026-11-01T23:59:59-05:00"),
        event("next-day", key, 70, at="2026-11-02T00:00:00-05:00"),
    ]
    day = date(2026, 11, 1)
    summary = run(tmp_path, events, [read_row(key)], day=day, timezone="America/New_York")
    assert summary["in_night"] == 3 and summary["outside_night"] == 1
    start, end = tickets.Night(day, "America/New_York").bounds()
    assert end - start == timedelta(hours=25)


def test_one_vehicle_at_one_camera_within_the_window_gets_one_citation(tmp_path, scenes):
    same, other = scenes[0]["key"], scenes[1]["key"]
    minute = timedelta(minutes=1)
    events = [
        event("first", same, 60, at=NOON),  # excess 10
        event("fastest", same, 70, at=NOON + 5 * minute),  # excess 20: the one cited
        event("at-window-end", same, 65, at=NOON + 10 * minute),  # inclusive
        event("after-window", same, 58, at=NOON + 10 * minute + timedelta(seconds=1)),
        event("other-camera", same, 60, at=NOON + 2 * minute, camera="cam2"),
        event("other-plate", other, 60, at=NOON + minute),
    ]
    reads = [read_row(same, "ABC1234"), read_row(other, "XYZ9876")]
    summary = run(tmp_path, events, reads)

    cited = by_event(output(tmp_path, "citations"))
    duplicates = by_event(output(tmp_path, "duplicates"))
    assert set(cited) == {"fastest", "after-window", "other-camera", "other-plate"}
    assert set(duplicates) == {"first", "at-window-end"}
    assert {d["duplicate_of"] for d in duplicates.values()} == {cited["fastest"]["citation_id"]}
    assert summary["duplicates"] == 2 and summary["citations"] == 4
    assert_every_row_counted(summary)

    no_window = run(tmp_path, events, reads, dedupe_window=timedelta(0))
    assert no_window["citations"] == 6 and no_window["duplicates"] == 0


def test_bad_event_rows_are_rejected_with_file_row_column_and_reason(tmp_path, scenes):
    key = scenes[0]["key"]
    events = [
        event("good", key, 70),
        event("naive", key, 70, at="2026-11-24T12:00:00"),
        event("negative", key, -3),
        event("kph", key, 70, unit="kph"),
        event("words", key, "fast", at="yesterday"),
        event("no-camera", key, 70, camera=""),
        event("good", key, 80),  # the same event_id again
        event("tomorrow", key, -1, at="2026-11-25T12:00:00Z"),  # another night's problem
    ]
    summary = run(tmp_path, events, [read_row(key)])

    rejected = output(tmp_path, "rejected")
    problems = {(r["row"], r["column"]): r["reason"] for r in rejected}
    assert problems == {
        (2, "captured_at"): "no time zone: give an offset (+02:00, Z) or a tz-aware timestamp",
        (3, "speed"): "negative speed",
        (4, "unit"): "unknown unit: use mph or km/h",
        (5, "captured_at"): "not an ISO 8601 timestamp",
        (5, "speed"): "not a number",
        (6, "camera_id"): "missing value",
        (7, "event_id"): f"duplicate event_id: first in {tmp_path}/events/events.csv row 1",
    }
    assert {r["file"] for r in rejected} == {f"{tmp_path}/events/events.csv"}
    assert next(r for r in rejected if r["row"] == 4)["value"] == "kph"
    assert summary["rejected_rows"] == 6 and summary["rejected_values"] == 7
    assert summary["citations"] == 1 and summary["outside_night"] == 1
    assert_every_row_counted(summary)
    page = Path(summary["outputs"]["page"]).read_text()
    assert "Rejected event values (7)" in page


def test_parquet_events_need_time_zone_aware_timestamps(tmp_path, scenes):
    key = scenes[0]["key"]
    aware = [event("aware", key, 70) | {"captured_at": NOON}]
    naive = [event("naive", key, 70) | {"captured_at": NOON.replace(tzinfo=None)}]
    write_events(tmp_path / "ev" / "aware.parquet", aware)
    write_events(tmp_path / "ev" / "naive.parquet", naive)
    (tmp_path / "ev" / "notes.txt").write_text("not events")
    summary = tickets.run_tickets(
        tickets.Night(DAY),
        str(tmp_path / "ev"),
        str(write_reads(tmp_path / "reads", [read_row(key)])),
        str(tmp_path / "out"),
        never_read,
    )
    assert summary["citations"] == 1 and summary["rejected_rows"] == 1
    assert summary["ignored_files"] == [f"{tmp_path}/ev/notes.txt"]
    assert output(tmp_path, "rejected")[0]["column"] == "captured_at"


def test_rerunning_a_night_replaces_its_outputs(tmp_path, scenes):
    keys = [s["key"] for s in scenes]
    events = [event(f"e{i}", k, 60 + i, at=NOON + timedelta(hours=i)) for i, k in enumerate(keys)]
    reads = [
        read_row(k, s["plate"], 0.7 + 0.05 * i, box=s["box"])
        for i, (k, s) in enumerate(zip(keys, scenes, strict=True))
    ]
    other_night = tickets.run_tickets(
        tickets.Night(DAY - timedelta(days=1)),
        str(write_events(tmp_path / "events" / "events.csv", events)),
        str(write_reads(tmp_path / "reads", reads)),
        str(tmp_path / "out"),
        never_read,
    )
    assert other_night["in_night"] == 0

    def snapshot():
        files = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*"))
        rows = {
            dataset: [
                {k: v for k, v in r.items() if k not in ("run_id", "generated_at")}
                for r in output(tmp_path, dataset)
            ]
            for dataset in ("citations", "review", "duplicates", "rejected")
        }
        return files, rows

    first = run(tmp_path, events, reads)
    files, rows = snapshot()
    second = run(tmp_path, events, reads)
    assert snapshot() == (files, rows)
    assert first["run_id"] != second["run_id"]
    assert first["citations"] == 4 and first["review"] == 2  # confidences 0.7 .. 0.95
    assert "citations/date=2026-11-23/part-0.parquet" in files
    assert not [f for f in files if ".tmp-" in f]  # no temporary left
    assert {f.split("/")[0] for f in files if f.startswith("_")} == {"_state"}  # the job's own

    page = (tmp_path / "out" / "pages" / "review-2026-11-24.html").read_text()
    assert page.count('<article class="item') == 6 and "To review (2)" in page

    crops = sorted((tmp_path / "out" / "crops" / "date=2026-11-24").glob("*.png"))
    assert {p.stem for p in crops} == {r["citation_id"] for r in rows["citations"] + rows["review"]}
    crop = cv2.imread(str(crops[0]))
    assert crop is not None and crop.shape[0] > 10 and crop.shape[1] > crop.shape[0]

    # A stricter rerun moves tickets to review: the night's citations hold only what remains.
    stricter = run(tmp_path, events, reads, min_confidence=0.93)
    cited = output(tmp_path, "citations")
    assert stricter["citations"] == len(cited) == 1 and stricter["review"] == 5
    assert cited[0]["citation_id"] == rows["citations"][-1]["citation_id"]
    assert len(output(tmp_path, "citations", DAY - timedelta(days=1))) == 0


def test_images_without_a_read_are_read_with_the_model(tmp_path, scenes, use_trained):
    from anpr_jobs.models import load_recognizer
    from anpr_jobs.recognize import recognize_file

    keys = [s["key"] for s in scenes[:3]]
    events = [event(f"e{i}", k, 80, at=NOON + timedelta(hours=i)) for i, k in enumerate(keys)]
    loads = []

    def load():
        loads.append(1)
        return load_recognizer()

    reader = image_reader(load)
    summary = run(tmp_path, events, [read_row(keys[0], "KNOWN12")], read_images=reader)

    assert summary["images_read_now"] == 2 and len(loads) == 1
    items = by_event(output(tmp_path, "citations") + output(tmp_path, "review"))
    assert set(items) == {"e0", "e1", "e2"}
    assert items["e0"]["plate"] == "KNOWN12" and items["e0"]["model_version"] == "3"
    recognizer = load_recognizer()
    for name in ("e1", "e2"):
        item = items[name]
        expected = recognize_file(item["image_key"], recognizer)["plates"]
        assert item["model_version"] == "1" and item["read_run_id"]
        assert item["plate"] == (expected[0]["text"] if expected else None)
        assert (tmp_path / "out" / item["crop_key"]).is_file()


def test_cli_writes_the_night_and_duckdb_reads_it(tmp_path, scenes, anpr):
    import duckdb

    keys = [s["key"] for s in scenes[:2]]
    write_events(tmp_path / "events.parquet", [event("a", keys[0], 70), event("b", keys[1], 70)])
    write_reads(tmp_path / "reads", [read_row(keys[0]), read_row(keys[1], confidence=0.5)])
    status, out, err = anpr(
        "tickets", "--date", "2026-11-24", "--timezone", "Europe/Paris",
        tmp_path / "events.parquet", tmp_path / "reads", tmp_path / "out",
    )  # fmt: skip
    assert status == 0, err
    assert "in_night 2, speeding 2, citations 1, duplicates 0, review 1, rejected_rows 0" in out
    assert f"page: {tmp_path}/out/pages/review-2026-11-24.html" in out
    summary = json.loads((tmp_path / "out" / "summaries" / "2026-11-24.json").read_text())
    assert summary["timezone"] == "Europe/Paris" and summary["review_by_reason"]["low_confidence"]
    query = (
        "select count(*), min(plate) from read_parquet(?, hive_partitioning = true) "
        "where date = '2026-11-24'"
    )
    glob = str(tmp_path / "out" / "citations" / "*" / "*.parquet")
    assert duckdb.execute(query, [glob]).fetchone() == (1, "ABC1234")


def test_cli_refuses_unusable_input_in_one_line(tmp_path, scenes, anpr):
    key = scenes[0]["key"]
    reads = write_reads(tmp_path / "reads", [read_row(key)])
    bad = write_events(tmp_path / "bad.csv", [{"event_id": "a", "camera_id": "c", "speed": 1}])
    status, _, err = anpr("tickets", "--date", "2026-11-24", bad, reads, tmp_path / "out")
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(f"anpr: error: events file {bad} lacks columns captured_at, ")
    assert "image_key, speed_limit, unit (needs event_id," in err

    (tmp_path / "garbage.parquet").write_bytes(b"not parquet at all")
    status, _, err = anpr(
        "tickets", "--date", "2026-11-24", tmp_path / "garbage.parquet", reads, tmp_path
    )
    assert status == 1 and f"cannot read events file {tmp_path}/garbage.parquet: " in err

    good = write_events(tmp_path / "good.csv", [event("a", key, 70)])
    cases = {
        ("--date", "24/11/2026"): "--date must be YYYY-MM-DD, got '24/11/2026'",
        ("--date", "2026-11-24", "--timezone", "Mars/Olympus"): "unknown time zone 'Mars/Olympus'",
        ("--date", "2026-11-24", "--min-confidence", "80"): "min confidence must be within 0..1",
        ("--date", "2026-11-24", "--dedupe-window", "-3"): "0 to 1440 minutes, got -3",
    }
    for options, message in cases.items():
        status, _, err = anpr("tickets", *options, good, reads, tmp_path / "out")
        assert status == 1 and message in err and err.count("\n") == 1
    status, _, err = anpr("tickets", "--date", "2026-11-24", good, tmp_path / "nope", tmp_path)
    assert status == 1 and "plate reads not found" in err
    status, _, err = anpr("tickets", "--date", "2026-11-24", tmp_path / "none.csv", reads, tmp_path)
    assert status == 1 and "events not found" in err


def test_a_missing_read_without_a_model_says_how_to_get_one(tmp_path, scenes, workdir, anpr):
    write_events(tmp_path / "ev.csv", [event("a", scenes[0]["key"], 70)])
    (tmp_path / "reads").mkdir()
    status, _, err = anpr(
        "tickets", "--date", "2026-11-24", tmp_path / "ev.csv", tmp_path / "reads", tmp_path / "out"
    )
    assert status == 1 and "anpr train" in err and err.count("\n") == 1


NEW_YORK = "America/New_York"


@pytest.mark.parametrize("order", ["night before first", "night after first"])
def test_one_vehicle_across_midnight_gets_one_citation(tmp_path, scenes, order):
    from zoneinfo import ZoneInfo

    key, other = scenes[0]["key"], scenes[1]["key"]
    midnight = datetime(2026, 11, 24, tzinfo=ZoneInfo(NEW_YORK))
    second = timedelta(seconds=1)
    events = [
        event("late", key, 70, at=midnight - second),  # 23:59:59 on the 23rd: cited that night
        event("early", key, 90, at=midnight),  # 00:00:00, faster, but the ticket is issued
        event("window-end", key, 65, at=midnight + timedelta(minutes=10) - second),
        event("after", key, 65, at=midnight + timedelta(minutes=10)),  # 10 min 1 s: a new one
        event("other-plate", other, 65, at=midnight + second),
    ]
    events_url = write_events(tmp_path / "events" / "ev.csv", events)
    reads_url = write_reads(tmp_path / "reads", [read_row(key), read_row(other, "XYZ9876")])
    before, night = DAY - timedelta(days=1), DAY
    days = [before, night] if order == "night before first" else [night, before]
    summaries = {
        day: night_run(tmp_path, day, events_url, reads_url, timezone=NEW_YORK) for day in days
    }

    issued = by_event(output(tmp_path, "citations", before))
    assert set(issued) == {"late"}
    cited = by_event(output(tmp_path, "citations", night))
    duplicates = by_event(output(tmp_path, "duplicates", night))
    assert set(cited) == {"after", "other-plate"}
    assert set(duplicates) == {"early", "window-end"}
    assert {d["duplicate_of"] for d in duplicates.values()} == {issued["late"]["citation_id"]}
    assert summaries[night]["duplicates_of_earlier_night"] == 2
    for summary in summaries.values():
        assert_every_row_counted(summary)
    # a rerun of the later night, now that the earlier one's outputs exist, changes nothing
    night_run(tmp_path, night, events_url, reads_url, timezone=NEW_YORK)
    assert by_event(output(tmp_path, "duplicates", night)).keys() == duplicates.keys()


def test_a_row_without_a_usable_time_is_rejected_once_over_all_nights(tmp_path, scenes):
    key = scenes[0]["key"]
    events = [
        event("a", key, 70, at=NOON - timedelta(days=1)),
        event("no-time", key, 70, at="yesterday evening"),
        event("no-zone", key, 70, at="2026-11-24T12:00:00"),
        event("b", key, 70, at=NOON),
        event("bad-unit", key, 70, at=NOON, unit="furlongs"),  # in the night: rejected there
    ]
    events_url = write_events(tmp_path / "events" / "ev.csv", events)
    reads_url = write_reads(tmp_path / "reads", [read_row(key)])
    before = DAY - timedelta(days=1)
    first = night_run(tmp_path, DAY, events_url, reads_url, timezone="UTC")
    earlier = night_run(tmp_path, before, events_url, reads_url, timezone="UTC")
    again = night_run(tmp_path, DAY, events_url, reads_url, timezone="UTC")

    assert first["rejected_rows"] == again["rejected_rows"] == 3
    assert {r["event_id"] for r in output(tmp_path, "rejected")} == {
        "no-time",
        "no-zone",
        "bad-unit",
    }
    assert earlier["rejected_rows"] == 0 and earlier["rejected_in_earlier_night"] == 2
    assert output(tmp_path, "rejected", before) == []
    for summary in (first, earlier, again):
        assert_every_row_counted(summary)


def test_an_image_key_written_another_way_finds_its_read(tmp_path, scenes, monkeypatch):
    key = Path(scenes[0]["key"])
    monkeypatch.chdir(key.parent.parent)
    ways = {
        "file-url": key.as_uri(),
        "double-slash": str(key).replace("/cam1/", "//cam1//"),
        "relative": str(key.relative_to(key.parent.parent)),
        "dotted": f"{key.parent}/./{key.name}",
    }
    events = [
        event(name, way, 70, at=NOON + timedelta(hours=i))
        for i, (name, way) in enumerate(ways.items())
    ]
    summary = run(tmp_path, events, [read_row(str(key))])
    cited = by_event(output(tmp_path, "citations"))
    assert set(cited) == set(ways) and summary["review"] == 0
    assert {row["image_key"] for row in cited.values()} == {str(key)}


def test_keys_read_by_the_job_itself_and_missing_images(tmp_path, scenes, use_trained):
    from anpr_jobs.models import load_recognizer

    key = Path(scenes[1]["key"])
    events = [
        event("url", key.as_uri(), 80, at=NOON),
        event("gone", str(key.with_name("gone.jpg")), 80, at=NOON + timedelta(hours=1)),
    ]
    reader = image_reader(load_recognizer)
    summary = run(tmp_path, events, [], read_images=reader)
    items = by_event(output(tmp_path, "citations") + output(tmp_path, "review"))
    assert summary["images_read_now"] == 2
    assert items["url"]["read_error"] is None and items["url"]["read_status"] in ("ok", "no_plate")
    assert items["gone"]["reason"] == "error"
    assert items["gone"]["read_error"] == "missing: no such object"


def test_an_output_that_cannot_be_written_fails_before_any_work(tmp_path, scenes, anpr):
    key = scenes[0]["key"]
    events = write_events(tmp_path / "ev.csv", [event("a", key, 70)])
    reads = write_reads(tmp_path / "reads", [read_row(key)])
    (tmp_path / "a-file").write_text("not a folder")
    cases = {tmp_path / "a-file": "is a file, not a folder", tmp_path / "a-file" / "out": "cannot"}
    for out, message in cases.items():
        status, stdout, err = anpr("tickets", "--date", "2026-11-24", events, reads, out)
        assert status == 1 and message in err and err.count("\n") == 1, err
        assert stdout == ""  # nothing was read or written first


def test_an_events_file_with_glob_characters_is_that_file(tmp_path, scenes, anpr):
    key = scenes[0]["key"]
    reads = write_reads(tmp_path / "reads", [read_row(key)])
    named = write_events(tmp_path / "events" / "ev[1].csv", [event("mine", key, 70)])
    write_events(tmp_path / "events" / "ev1.csv", [event("the-glob-would-match", key, 70)])
    status, out, err = anpr("tickets", "--date", "2026-11-24", named, reads, tmp_path / "o[1]")
    assert status == 0, err
    cited = pads.dataset(tmp_path / "o[1]" / "citations", partitioning="hive").to_table()
    assert cited.column("event_id").to_pylist() == ["mine"]


def test_each_read_needs_the_threshold_its_version_learned(tmp_path, scenes):
    keys = [s["key"] for s in scenes[:3]]
    events = [event(f"e{i}", k, 70, at=NOON + timedelta(hours=i)) for i, k in enumerate(keys)]
    learned = [
        read_row(keys[0], "AAA1111", confidence=0.95) | {"citation_threshold": 0.97},
        read_row(keys[1], "BBB2222", confidence=0.98) | {"citation_threshold": 0.97},
        read_row(keys[2], "CCC3333", confidence=0.85) | {"model_version": "1"},  # no calibrator
    ]
    summary = run(tmp_path, events, learned)
    cited, review = by_event(output(tmp_path, "citations")), by_event(output(tmp_path, "review"))
    assert set(cited) == {"e1", "e2"} and review["e0"]["reason"] == "low_confidence"
    assert review["e0"]["min_confidence"] == pytest.approx(0.97)
    assert cited["e2"]["min_confidence"] == pytest.approx(0.8)
    assert summary["min_confidence"] is None
    assert summary["min_confidence_by_version"] == {
        "anpr-char-classifier-us 1": 0.8,
        "anpr-char-classifier-us 3": 0.97,
    }
    assert summary["expected_wrong_citations"] == pytest.approx(0.02 + 0.15, abs=1e-3)
    page = (tmp_path / "out" / "pages" / "review-2026-11-24.html").read_text()
    assert "0.95 (&lt; 0.97 needed)" in page
    versions = "anpr-char-classifier-us 1: 0.8, anpr-char-classifier-us 3: 0.97"
    assert f"each version&#39;s ({versions})" in page
    given = run(tmp_path, events, learned, min_confidence=0.9)
    assert given["citations"] == 2 and given["min_confidence"] == 0.9  # e0 and e1; e2 0.85
