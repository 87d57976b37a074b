"""anpr_jobs.storage: decoding images from paths and bytes, with clear errors."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from anpr_core.config import load_region
from anpr_core.errors import ImageError
from anpr_jobs.storage import load_gray, load_image


def encoded(suffix: str) -> bytes:
    image = np.zeros((30, 40, 3), np.uint8)
    image[:, :20] = (255, 0, 0)
    ok, data = cv2.imencode(suffix, image)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_load_image_decodes_bytes_and_paths_to_bgr(tmp_path, suffix):
    data = encoded(suffix)
    path = tmp_path / f"x{suffix}"
    path.write_bytes(data)
    for source in (data, path, str(path)):
        image = load_image(source)
        assert image.shape == (30, 40, 3) and image.dtype == np.uint8
        assert image[0, 0, 0] > 200 and image[0, 0, 2] < 50  # blue stays in channel 0
    assert load_gray(data).shape == (30, 40)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty"), (b"plain text, not a picture\n", "decode"), (None, "decode")],
)
def test_load_image_refuses_non_images_with_a_reason(tmp_path, content, reason):
    if content is None:
        content = encoded(".jpg")[:40]  # a truncated JPEG
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        load_image(path)
    with pytest.raises(ImageError, match=reason):
        load_gray(content)


def test_load_image_names_a_missing_file_or_a_folder(tmp_path):
    with pytest.raises(ImageError, match="missing"):
        load_image(tmp_path / "absent.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_archive_images_decode_grey_and_upright_and_odd_files_get_a_reason():
    from support import odd_images

    from anpr_core.synth import synth_scene
    from anpr_jobs.storage import decode_archive_image

    scene = synth_scene(np.random.default_rng(5), load_region("us")).image
    for key, (data, expected) in odd_images(scene).items():
        if expected == "read" or expected == "error:too_small":  # too small: the pipeline says
            image = decode_archive_image(data)
            assert image.gray.ndim == 2 and image.gray.dtype == np.uint8, key
            if expected == "read":
                assert (image.width, image.height) == (scene.shape[1], scene.shape[0]), key
        else:
            with pytest.raises(ImageError, match=expected.split(":")[1]):
                decode_archive_image(data)


def test_listing_takes_every_object_under_a_folder_but_hidden_ones(tmp_path):
    from anpr_jobs.storage import list_images, read_manifest

    for name in ("a/1.jpg", "a/b/2.JPG", "a/notes.txt", "a/.hidden.jpg", "a/.cache/3.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    listed = [path for path, _ in list_images(str(tmp_path / "a"))]
    assert listed == [str(tmp_path / n) for n in ("a/1.jpg", "a/b/2.JPG", "a/notes.txt")]
    globbed = [path for path, _ in list_images(str(tmp_path / "a" / "*.jpg"))]
    assert globbed == [str(tmp_path / "a/1.jpg")]
    with pytest.raises(FileNotFoundError, match="no images"):
        list_images(str(tmp_path / "absent"))
    (tmp_path / "keys.csv").write_text("image_key\nb/2.JPG\n1.jpg\n\n", encoding="utf-8")
    manifest = read_manifest(str(tmp_path / "keys.csv"), str(tmp_path / "a"))
    expected = [str(tmp_path / "a/1.jpg"), str(tmp_path / "a/b/2.JPG")]
    assert [path for path, _ in manifest] == expected


def test_parquet_files_are_replaced_whole(tmp_path):
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    from anpr_jobs.storage import write_parquet_atomic

    fs = fsspec.filesystem("file")
    target = str(tmp_path / "d=1" / "part-x.parquet")
    write_parquet_atomic(pa.table({"a": [1, 2]}), fs, target)
    write_parquet_atomic(pa.table({"a": [3]}), fs, target)
    assert pq.read_table(target).column("a").to_pylist() == [3]
    assert [p.name for p in (tmp_path / "d=1").iterdir()] == ["part-x.parquet"]  # no leftovers


def test_a_reader_sees_the_old_file_or_the_new_one_never_a_part(tmp_path, monkeypatch):
    """Written in place, a reader would catch a truncated file (and a failed write would leave
    one): the new bytes go to another name and are renamed over the old ones."""
    import os
    import threading

    import fsspec

    from anpr_jobs.storage import write_bytes_atomic

    fs = fsspec.filesystem("file")
    target = str(tmp_path / "summary.json")
    versions = [bytes([n]) * (4 << 20) for n in range(1, 9)]  # 4 MiB each
    write_bytes_atomic(fs, target, versions[0])
    held = open(target, "rb")  # noqa: SIM115 - held open across the writes, closed below
    seen, stop = set(), threading.Event()

    def read_while_written():
        while not stop.is_set():
            with open(target, "rb") as handle:
                data = handle.read()
            seen.add((len(data), data[:1], data[-1:]))

    reader = threading.Thread(target=read_while_written)
    reader.start()
    for data in versions[1:]:
        write_bytes_atomic(fs, target, data)
    stop.set()
    reader.join()
    whole = {(len(v), v[:1], v[-1:]) for v in versions}
    assert seen and seen <= whole, seen - whole
    # renamed into place, not rewritten: the file held open is still the first, whole
    assert os.fstat(held.fileno()).st_ino != os.stat(target).st_ino
    assert held.read() == versions[0]
    held.close()

    def failed_rename(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failed_rename)
    with pytest.raises(OSError, match="No space"):
        write_bytes_atomic(fs, target, b"never")
    monkeypatch.undo()
    assert Path(target).read_bytes() == versions[-1]  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temporary left


class FlakyDisk:
    """The local disk, except that the first ``failures`` batch reads of each path fail the
    way a dropped connection does: a stand-in for a network blip, on real files."""

    def __init__(self, failures: int):
        import fsspec

        self.disk = fsspec.filesystem("file")
        self.failures = failures
        self.calls = 0

    def cat_ranges(self, paths, starts, ends, on_error="raise"):
        self.calls += 1
        if self.calls <= self.failures:
            return [ConnectionResetError("connection reset by peer") for _ in paths]
        return self.disk.cat_ranges(paths, starts, ends, on_error=on_error)


def test_a_transient_read_failure_is_retried_and_a_missing_file_is_not(tmp_path):
    from anpr_jobs.storage import fetch_all

    (tmp_path / "a.jpg").write_bytes(b"abc")
    paths = [str(tmp_path / "a.jpg"), str(tmp_path / "gone.jpg")]
    got = fetch_all(FlakyDisk(failures=2), paths, attempts=3)
    assert got[paths[0]] == b"abc"
    assert isinstance(got[paths[1]], FileNotFoundError)
    got = fetch_all(FlakyDisk(failures=3), paths[:1], attempts=3)
    assert isinstance(got[paths[0]], ConnectionResetError)  # still failing: an error row


def test_a_filesystem_that_retries_itself_is_not_retried_again(tmp_path):
    from anpr_jobs.storage import fetch_all

    (tmp_path / "a.jpg").write_bytes(b"abc")
    s3_like = FlakyDisk(failures=1)
    s3_like.retries = 5  # as s3fs, which retries each request with its own backoff
    got = fetch_all(s3_like, [str(tmp_path / "a.jpg")], attempts=3)
    assert isinstance(got[str(tmp_path / "a.jpg")], ConnectionResetError)
    assert s3_like.calls == 1
