"""Inputs an adversarial user tries, as classes: keys with glob characters, decompression bombs
and oversize files through every command that opens an image, odd image formats, and outputs
that cannot be written. Each asserts rows, reasons and exit codes."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from support import GLOB_NAMES, scene_jpeg

from anpr_jobs.storage import MAX_IMAGE_BYTES, NULL_PARTITION, decode_image, fetch_all, open_url


def glob_archive(root: Path) -> dict[str, int]:
    """``root`` holding one scene per GLOB_NAMES name: ``{absolute key: width}``."""
    folder = root / "cam[1]" / "2026" / "10" / "05"
    folder.mkdir(parents=True)
    widths = {}
    for i, name in enumerate(GLOB_NAMES):
        (folder / name).write_bytes(scene_jpeg(i, 480 + 16 * i))
        widths[str(folder / name)] = 480 + 16 * i
    return widths


def test_fetching_takes_every_key_literally(tmp_path):
    widths = glob_archive(tmp_path)
    fs, _ = open_url(str(tmp_path))
    got = fetch_all(fs, [*widths, str(tmp_path / "a[2].jpg")])
    for key, width in widths.items():
        assert decode_image(got[key]).shape[1] == width, key
    assert isinstance(got[str(tmp_path / "a[2].jpg")], FileNotFoundError)


def test_reprocess_reads_names_with_glob_characters_as_they_are(use_trained, anpr, tmp_path):
    widths = glob_archive(tmp_path / "archive")
    (tmp_path / "out1").mkdir()
    (tmp_path / "out1" / "keep.txt").write_text("a neighbour the output's name must not match")
    out = tmp_path / "out[1]"
    args = ("reprocess", tmp_path / "archive", out, "--workers", "1", "--partition-size", "4")
    for _ in range(2):  # the second run resumes: nothing to redo, nothing lost
        status, stdout, err = anpr(*args)
        assert status == 0, err
    assert "0 images read" in stdout and f"{len(widths)} skipped as done" in stdout
    status, _, err = anpr(*args, "--no-resume")
    assert status == 0, err
    rows = pd.read_parquet(out)
    assert sorted(rows["image_key"]) == sorted(widths)
    assert set(rows["status"]) <= {"ok", "no_plate"}, rows[["image_key", "error"]]
    for row in rows.itertuples():
        assert row.image_width == widths[row.image_key], row.image_key  # its own file, read
    assert (tmp_path / "out1" / "keep.txt").exists()
    assert set(rows["camera_id"]) == {"cam[1]"}


def test_a_key_that_cannot_be_fetched_is_one_error_row(use_trained, anpr, tmp_path):
    widths = glob_archive(tmp_path / "archive")
    folder = Path(next(iter(widths))).parent
    manifest = tmp_path / "keys.csv"
    keys = [*widths, str(folder / "gone[1].jpg"), str(folder)]
    pd.DataFrame({"image_key": keys}).to_csv(manifest, index=False)  # quotes b{1,2}.jpg
    out = tmp_path / "reads"
    status, stdout, err = anpr(
        "reprocess", tmp_path / "archive", out, "--manifest", manifest, "--workers", "1"
    )
    assert status == 0, err
    rows = pd.read_parquet(out).set_index("image_key")
    assert len(rows) == len(keys)
    assert rows.loc[str(folder / "gone[1].jpg"), "error"] == "missing: no such object"
    assert rows.loc[str(folder), "error"].startswith(("not_a_file", "missing"))
    assert (rows.loc[list(widths), "status"] != "error").all()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` black pixels, compressed to a few hundred KB:
    a decompression bomb (about 400 MB once decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    parts = [compressor.compress(row) for _ in range(height)]
    data = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory) -> dict[str, Path]:
    """A bomb PNG, a 200 MB file (sparse on disk) that starts like a JPEG, a 12-bit JPEG, a
    0x0 PNG and a good scene, in one folder."""
    folder = tmp_path_factory.mktemp("hostile")
    files = {name: folder / name for name in ("bomb.png", "huge.jpg", "twelve.jpg", "empty.png")}
    files["bomb.png"].write_bytes(bomb_png())
    good = scene_jpeg(1, 640)
    with open(files["huge.jpg"], "wb") as handle:
        handle.write(good)
        handle.truncate(200 * 2**20)
    # an 8-bit baseline stream is a valid 12-bit extended one: the frame header says 12 bits
    twelve = bytearray(cv2.imencode(".jpg", np.full((48, 64), 90, np.uint8))[1].tobytes())
    at = twelve.find(b"\xff\xc0")
    twelve[at + 1], twelve[at + 4] = 0xC1, 12
    files["twelve.jpg"].write_bytes(bytes(twelve))
    header = struct.pack(">IIBBBBB", 0, 0, 8, 0, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    files["empty.png"].write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + header + crc
    )
    files["good.jpg"] = folder / "good.jpg"
    files["good.jpg"].write_bytes(good)
    return files


EXPECTED_REASONS = {
    "bomb.png": "too_large: 20000x20000 px over 40 MP limit",
    "huge.jpg": f"too_large: {200 * 2**20} bytes over the {MAX_IMAGE_BYTES >> 20} MB file limit",
    "twelve.jpg": "unsupported: 12-bit JPEG precision",
    "empty.png": "empty: the image is 0x0 px",
}


def peak_child_mib(argv: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """The finished ``anpr ARGV`` and the peak resident memory of its process (MiB), measured
    by a fresh parent whose only child it is."""
    probe = (
        "import resource, subprocess, sys, json\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps([done.returncode, done.stdout, done.stderr, peak]))\n"
    )
    anpr = str(Path(sys.executable).parent / "anpr")
    result = subprocess.run(
        [sys.executable, "-c", probe, anpr, *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"},
        timeout=300,
        check=True,
    )
    code, out, err, peak = json.loads(result.stdout)
    return subprocess.CompletedProcess(argv, code, out, err), peak


def test_recognize_refuses_bombs_and_odd_files_before_decoding(use_trained, hostile_files):
    paths = [str(hostile_files[name]) for name in (*EXPECTED_REASONS, "good.jpg")]
    done, peak = peak_child_mib(["recognize", *paths], use_trained["root"])
    assert done.returncode == 1, done.stderr  # some images could not be read
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    by_file = {Path(line["file"]).name: line for line in lines}
    for name, reason in EXPECTED_REASONS.items():
        assert by_file[name]["error"].startswith(reason), by_file[name]
    assert "plates" in by_file["good.jpg"]
    assert "libpng" not in done.stderr and "OpenCV" not in done.stdout
    assert peak < 1024, f"anpr recognize peaked at {peak:.0f} MiB"


def test_evaluate_counts_bombs_as_unread_without_decoding_them(
    use_trained, hostile_files, tmp_path
):
    for name in EXPECTED_REASONS:
        (tmp_path / f"{Path(name).stem}.jpg").symlink_to(hostile_files[name])
        (tmp_path / f"{Path(name).stem}.txt").write_text(
            f"{Path(name).stem}.jpg\t10\t10\t100\t40\tABC1234\n"
        )
    done, peak = peak_child_mib(["evaluate", str(tmp_path), "--json"], use_trained["root"])
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["n_images"] == len(EXPECTED_REASONS) and figures["plate_accuracy"] == 0
    assert peak < 1024, f"anpr evaluate peaked at {peak:.0f} MiB"


def test_tickets_neither_decodes_nor_crops_an_image_reprocess_refused(
    use_trained, hostile_files, tmp_path, anpr
):
    archive = tmp_path / "archive" / "cam1" / "2026" / "11" / "24"
    archive.mkdir(parents=True)
    for name in ("bomb.png", "huge.jpg"):
        (archive / name).symlink_to(hostile_files[name])
    status, _, err = anpr("reprocess", tmp_path / "archive", tmp_path / "reads", "--workers", "1")
    assert status == 0, err
    events = tmp_path / "events.csv"
    rows = [
        f"e{i},cam1,2026-11-24T12:0{i}:00+00:00,{archive / name},80,50,mph"
        for i, name in enumerate(("bomb.png", "huge.jpg"))
    ]
    header = "event_id,camera_id,captured_at,image_key,speed,speed_limit,unit"
    events.write_text("\n".join([header, *rows]) + "\n")
    argv = ["tickets", "--date", "2026-11-24", str(events), str(tmp_path / "reads")]
    done, peak = peak_child_mib([*argv, str(tmp_path / "out")], use_trained["root"])
    assert done.returncode == 0, done.stderr
    review = pd.read_parquet(tmp_path / "out" / "review").set_index("event_id")
    assert review.loc["e0", "read_error"].startswith(EXPECTED_REASONS["bomb.png"])
    assert review.loc["e1", "read_error"].startswith(EXPECTED_REASONS["huge.jpg"])
    assert review["crop_key"].isna().all()  # no crop of an image that was refused
    assert not list((tmp_path / "out" / "crops").rglob("*.png"))
    assert peak < 1024, f"anpr tickets peaked at {peak:.0f} MiB"


def unwritable_folder(tmp_path: Path) -> Path | None:
    """A folder this process cannot create files in: one without write permission, or, for
    root (whom permissions do not stop), /sys; None when there is no such folder here."""
    if os.geteuid() != 0:
        (tmp_path / "locked").mkdir(mode=0o500)
        return tmp_path / "locked"
    try:
        (Path("/sys") / "anpr-probe").mkdir()
    except OSError:
        return Path("/sys")
    (Path("/sys") / "anpr-probe").rmdir()
    return None


def test_an_output_that_cannot_be_written_fails_before_any_image_is_read(
    use_trained, anpr, tmp_path
):
    glob_archive(tmp_path / "archive")
    (tmp_path / "a-file").write_text("not a folder")
    outputs = {tmp_path / "a-file": "is a file, not a folder", tmp_path / "a-file" / "x": "cannot"}
    locked = unwritable_folder(tmp_path)
    if locked is not None:
        outputs[locked / "out"] = "cannot write"
    for out, message in outputs.items():
        status, stdout, err = anpr("reprocess", tmp_path / "archive", out, "--workers", "1")
        assert status == 1 and message in err and err.count("\n") == 1, err
        assert "reprocess" not in stdout and "dask:" not in stdout  # before listing or a cluster


def test_capture_date_stays_a_date_when_some_images_have_no_time(use_trained, anpr, tmp_path):
    import duckdb

    dated = tmp_path / "archive" / "cam1" / "2026" / "10" / "05"
    dated.mkdir(parents=True)
    (dated / "a.jpg").write_bytes(scene_jpeg(1, 640))
    (tmp_path / "archive" / "loose.jpg").write_bytes(scene_jpeg(2, 640))  # no time anywhere
    out = tmp_path / "reads"
    status, _, err = anpr("reprocess", tmp_path / "archive", out, "--workers", "1")
    assert status == 0, err
    partitions = sorted(p.name for p in out.glob("capture_date=*"))
    assert partitions == [f"capture_date={NULL_PARTITION}", "capture_date=2026-10-05"]
    types = duckdb.sql(
        f"select distinct typeof(capture_date) from read_parquet('{out}/*/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()
    assert types == [("DATE",)]
    rows = pd.read_parquet(out).set_index("image_key")
    assert pd.isna(rows.loc[str(tmp_path / "archive" / "loose.jpg"), "captured_at"])
