"""Reviewers' decisions in the tickets job: the audit log, what each decision does to the
night's outputs, reruns that keep and apply them, and deduplication on corrected plates.

Nights, reads and events are made as in test_tickets.py; decisions are recorded the way the
review desk records them (``reviews.record_review``)."""

from __future__ import annotations

from datetime import timedelta

import fsspec
import pytest
from test_tickets import (
    DAY,
    NOON,
    assert_every_row_counted,
    by_event,
    event,
    output,
    read_row,
    run,
)

from anpr_jobs.tickets.reviews import (
    ReviewError,
    latest_by_item,
    load_reviews,
    make_review,
    record_review,
)


def night(tmp_path):
    """Four speeding events: e0 and e1 cited, e2 and e3 to review (low confidence)."""
    keys = [str(tmp_path / f"img{i}.jpg") for i in range(4)]
    events = [event(f"e{i}", k, 80, at=NOON + timedelta(hours=i)) for i, k in enumerate(keys)]
    reads = [
        read_row(keys[0], "AAA1111", confidence=0.99),
        read_row(keys[1], "BBB2222", confidence=0.99),
        read_row(keys[2], "CCC3333", confidence=0.3),
        read_row(keys[3], "DDD4444", confidence=0.3),
    ]
    return events, reads


def decide(tmp_path, kind, row, decision, reviewer="ana", **given):
    """The Review recorded for ``row`` (an output row of ``kind``) in tmp_path/out."""
    review = make_review(
        kind, row["citation_id"], row["event_id"], decision, row["plate"], reviewer, **given
    )
    record_review(fsspec.filesystem("file"), str(tmp_path / "out"), DAY.isoformat(), review)
    return review


def test_a_decision_names_its_reviewer_and_what_it_needs():
    item = ("review", "c1", "e1")
    with pytest.raises(ReviewError, match="reviewer's name"):
        make_review(*item, "confirm", "ABC123", "  ")
    with pytest.raises(ReviewError, match="takes confirm, correct"):
        make_review(*item, "void", "ABC123", "ana", reason="x")
    with pytest.raises(ReviewError, match="1 to 12 letters"):
        make_review(*item, "correct", "ABC123", "ana", plate=" - ")
    with pytest.raises(ReviewError, match="needs a reason"):
        make_review("citation", "c1", "e1", "void", "ABC123", "ana")
    with pytest.raises(ReviewError, match="no read to confirm"):
        make_review(*item, "confirm", None, "ana")
    corrected = make_review(*item, "correct", "ABC123", "ana", plate="abc-12 4")
    assert corrected.plate_after == "ABC124" and corrected.plate_before == "ABC123"
    assert make_review(*item, "unreadable", "ABC123", "ana").plate_after is None


def test_decisions_take_effect_and_a_rerun_keeps_them(tmp_path):
    events, reads = night(tmp_path)
    run(tmp_path, events, reads)
    cited, review = (by_event(output(tmp_path, d)) for d in ("citations", "review"))
    assert set(cited) == {"e0", "e1"} and set(review) == {"e2", "e3"}
    decide(tmp_path, "review", review["e2"], "confirm")
    decide(tmp_path, "review", review["e3"], "correct", plate="DDD4445")
    decide(tmp_path, "citation", cited["e1"], "void", reason="plate obscured by a trailer")
    voided_id = cited["e1"]["citation_id"]
    decide(tmp_path, "citation", cited["e0"], "confirm", reviewer="ben")

    for _ in range(2):  # the rerun of a decided night gives the same outputs
        summary = run(tmp_path, events, reads)
        cited = by_event(output(tmp_path, "citations"))
        voided = by_event(output(tmp_path, "voided"))
        assert set(cited) == {"e0", "e2", "e3"} and output(tmp_path, "review") == []
        assert cited["e2"]["source"] == "review" and cited["e2"]["plate"] == "CCC3333"
        assert cited["e3"]["plate"] == "DDD4445" and cited["e3"]["review"] == "correct"
        assert cited["e0"]["source"] == "model" and cited["e0"]["reviewer"] == "ben"
        assert voided["e1"]["reason"] == "plate obscured by a trailer"
        assert voided["e1"]["citation_id"] == voided_id  # the same stable id, kept
        assert (summary["citations"], summary["voided"], summary["reviewed"]) == (3, 1, 4)
        assert summary["expected_wrong_citations"] == 0  # every citation rests on a reviewer
        assert_every_row_counted(summary)
    log = load_reviews(fsspec.filesystem("file"), str(tmp_path / "out"), DAY.isoformat())
    assert [r.event_id for r in log] == ["e2", "e3", "e1", "e0"]


def test_a_second_reviewer_overrides_and_both_stay_in_the_log(tmp_path):
    events, reads = night(tmp_path)
    run(tmp_path, events, reads)
    item = by_event(output(tmp_path, "review"))["e2"]
    decide(tmp_path, "review", item, "unreadable", reviewer="ana")
    decide(tmp_path, "review", item, "correct", reviewer="ben", plate="CCC3338")
    summary = run(tmp_path, events, reads)
    log = load_reviews(fsspec.filesystem("file"), str(tmp_path / "out"), DAY.isoformat())
    assert [(r.reviewer, r.decision) for r in log] == [("ana", "unreadable"), ("ben", "correct")]
    assert latest_by_item(log)[item["citation_id"]].reviewer == "ben"
    assert by_event(output(tmp_path, "citations"))["e2"]["plate"] == "CCC3338"
    assert summary["dismissed"] == 0 and output(tmp_path, "dismissed") == []


def test_a_dismissed_item_leaves_the_queue_and_is_kept(tmp_path):
    events, reads = night(tmp_path)
    run(tmp_path, events, reads)
    item = by_event(output(tmp_path, "review"))["e3"]
    decide(tmp_path, "review", item, "not_a_violation", reason="emergency vehicle")
    summary = run(tmp_path, events, reads)
    assert set(by_event(output(tmp_path, "review"))) == {"e2"}
    dismissed = by_event(output(tmp_path, "dismissed"))
    assert dismissed["e3"]["review"] == "not_a_violation" and summary["dismissed"] == 1


def test_corrected_plates_are_deduplicated_like_any_other(tmp_path):
    keys = [str(tmp_path / f"img{i}.jpg") for i in range(2)]
    at = [NOON, NOON + timedelta(minutes=3)]
    events = [event(f"e{i}", k, 80 + i, at=at[i]) for i, k in enumerate(keys)]
    reads = [read_row(k, f"XYZ12{i}", confidence=0.3) for i, k in enumerate(keys)]
    run(tmp_path, events, reads)
    for row in output(tmp_path, "review"):
        decide(tmp_path, "review", row, "correct", plate="XYZ999")
    summary = run(tmp_path, events, reads)
    cited, duplicates = output(tmp_path, "citations"), output(tmp_path, "duplicates")
    assert [r["event_id"] for r in cited] == ["e1"]  # the higher speed of the one vehicle
    assert [r["duplicate_of"] for r in duplicates] == [cited[0]["citation_id"]]
    assert summary["citations"] == 1 and summary["duplicates"] == 1


def test_the_desk_and_the_job_publish_the_same_night(tmp_path):
    from anpr_jobs.tickets.publish import publish_night

    events, reads = night(tmp_path)
    run(tmp_path, events, reads)
    decide(tmp_path, "review", by_event(output(tmp_path, "review"))["e2"], "confirm")
    fs, root = fsspec.filesystem("file"), str(tmp_path / "out")

    def outputs():
        volatile = {"run_id", "generated_at"}
        found = {}
        for dataset in ("citations", "review", "duplicates", "voided", "dismissed"):
            rows = output(tmp_path, dataset)
            found[dataset] = [{k: v for k, v in r.items() if k not in volatile} for r in rows]
        return found

    summary = publish_night(fs, root, DAY.isoformat())  # as the desk does after a decision
    by_desk = outputs()
    assert set(by_event(by_desk["citations"])) == {"e0", "e1", "e2"} and summary["reviewed"] == 1
    run(tmp_path, events, reads)
    assert outputs() == by_desk
    with pytest.raises(FileNotFoundError, match="no tickets run for 2026-11-25"):
        publish_night(fs, root, "2026-11-25")


def test_reviewed_reads_become_a_labeled_folder_to_train_on(tmp_path, scenes, workdir, anpr):
    from anpr_core.datasets import read_labeled
    from anpr_jobs.train import train

    hours = [NOON + timedelta(hours=i) for i in range(len(scenes))]
    events = [event(f"e{i}", s["key"], 80, at=hours[i]) for i, s in enumerate(scenes)]
    wrong = [s["plate"][:-1] + ("0" if s["plate"][-1] != "0" else "1") for s in scenes]
    reads = [
        read_row(s["key"], wrong[i] if i % 2 else s["plate"], confidence=0.3, box=s["box"])
        for i, s in enumerate(scenes)
    ]
    run(tmp_path, events, reads)
    for row in output(tmp_path, "review"):
        i = int(row["event_id"][1:])
        if i % 2:
            decide(tmp_path, "review", row, "correct", plate=scenes[i]["plate"])
        elif i < 4:
            decide(tmp_path, "review", row, "confirm")
        else:
            decide(tmp_path, "review", row, "unreadable")
    labels = tmp_path / "reviewed"
    status, out, _ = anpr("review", "labels", tmp_path / "out", labels, "--since", "2026-11-24")
    expected = {s["plate"]: s["box"] for i, s in enumerate(scenes) if i % 2 or i < 4}
    assert status == 0 and out.startswith(f"{len(expected)} reviewed scenes")
    items = read_labeled(labels)
    assert {item.text: item.plates[0][0] for item in items} == expected
    result = train([labels], "us")
    assert result.data["from_reviews"][str(labels.resolve())]["labeled"] == len(expected)
    assert result.data["from_reviews"][str(labels.resolve())]["reviewers"] == ["ana"]
