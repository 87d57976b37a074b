"""anpr_jobs.capture: camera and capture time from an image key, else from EXIF."""

from datetime import UTC, datetime

import pytest

from anpr_jobs.capture import capture_of, compile_key_pattern, parse_time

EXIF = datetime(2026, 10, 5, 22, 15, 3, tzinfo=UTC)


def test_default_layout_gives_camera_and_date_and_takes_the_time_from_exif():
    pattern = compile_key_pattern(None)
    key = "s3://archive/cams/cam07/2026/10/05/img-1.jpg"
    assert capture_of(key, pattern, EXIF).camera_id == "cam07"
    assert capture_of(key, pattern, EXIF).captured_at == EXIF
    # no EXIF, or EXIF from another day (a camera clock gone wrong): the key's date wins
    assert capture_of(key, pattern, None).captured_at == datetime(2026, 10, 5, tzinfo=UTC)
    other_day = EXIF.replace(day=9)
    assert capture_of(key, pattern, other_day).captured_at == datetime(2026, 10, 5, tzinfo=UTC)


def test_keys_outside_the_layout_fall_back_to_exif_then_to_nothing():
    pattern = compile_key_pattern(None)
    assert capture_of("/data/loose/img.jpg", pattern, EXIF).captured_at == EXIF
    assert capture_of("/data/loose/img.jpg", pattern, None).captured_at is None
    assert capture_of("cam1/2026/13/45/img.jpg", pattern, None).captured_at is None  # no 13th month


def test_a_custom_pattern_names_camera_and_full_time():
    pattern = compile_key_pattern(r"(?P<camera_id>[^/_]+)_(?P<captured_at>\d{8}T\d{6})\.jpg$")
    capture = capture_of("s3://b/x/north-12_20261005T221503.jpg", pattern, None)
    assert capture.camera_id == "north-12"
    assert capture.captured_at == EXIF


def test_times_with_a_zone_are_converted_to_utc():
    assert parse_time("2026-10-06T00:15:03+02:00") == EXIF
    assert parse_time("20261005") == datetime(2026, 10, 5, tzinfo=UTC)


@pytest.mark.parametrize(("pattern", "reason"), [("(", "not a regular"), (r"\d+", "named group")])
def test_bad_patterns_are_refused_with_a_reason(pattern, reason):
    with pytest.raises(ValueError, match=reason):
        compile_key_pattern(pattern)
