"""anpr_jobs.reports: the confusion matrix, per-character table, misread gallery, reliability
diagram and precision-coverage curve of a run."""

import csv

import numpy as np
from PIL import Image

from anpr_core import datasets
from anpr_core.classify import REJECT
from anpr_core.evaluation import ImageResult
from anpr_jobs import reports


def test_confusion_counts_label_rows_and_read_columns_with_reject_last():
    true = list("AAB8B")
    read = ["A", "B", "B", "B", REJECT]
    classes, counts = reports.confusion(true, read)
    assert classes == ["8", "A", "B", REJECT]
    assert counts[classes.index("A"), classes.index("B")] == 1
    assert counts[classes.index("8"), classes.index("B")] == 1
    assert counts[classes.index("B"), classes.index(REJECT)] == 1
    assert counts.sum() == len(true) and counts[classes.index(REJECT)].sum() == 0


def test_per_char_accuracy_and_its_metrics():
    rows = reports.per_char_accuracy(list("AAAB0"), list("AABB8"))
    assert [(r.char, r.n, r.correct) for r in rows] == [("0", 1, 0), ("A", 3, 2), ("B", 1, 1)]
    assert reports.char_metrics(rows) == {"char_acc_0": 0.0, "char_acc_A": 2 / 3, "char_acc_B": 1}


def result(item, read, confidence):
    return ImageResult(item.name, item.text, read, confidence, None, 1.0)


def test_worst_misreads_put_confident_wrong_reads_first_with_their_crop(synthetic):
    items = datasets.read_labeled(synthetic["crops"])[:4]
    pairs = [
        (items[0], result(items[0], items[0].text, 0.99)),  # right: not a misread
        (items[1], result(items[1], "WRONG1", 0.40)),
        (items[2], result(items[2], None, 0.0)),
        (items[3], result(items[3], "WRONG2", 0.90)),
    ]
    worst = reports.worst_misreads(pairs)
    assert [m.read for m in worst] == ["WRONG2", "WRONG1", None]
    height, width = Image.open(items[3].path).size[::-1]
    assert worst[0].crop.shape == (height, width, 3)
    assert len(reports.worst_misreads(pairs, limit=1)) == 1


def test_a_scene_misread_shows_the_labeled_plate_not_the_whole_scene(synthetic):
    scene = datasets.read_labeled(synthetic["scenes"])[0]
    (miss,) = reports.worst_misreads([(scene, result(scene, "X", 0.5))])
    _, _, w, h = scene.plates[0][0]
    full_h, full_w = Image.open(scene.path).size[::-1]
    assert w <= miss.crop.shape[1] <= w * 1.4 < full_w
    assert h <= miss.crop.shape[0] <= h * 1.4 < full_h


def test_precision_coverage_keeps_the_most_confident_reads_first():
    named = [("a", "A", "A", 0.9), ("b", "B", "X", 0.8), ("c", "C", "C", 0.95), ("d", "D", None, 0)]
    results = [ImageResult(n, label, read, c, None, 1.0) for n, label, read, c in named]
    coverage, precision = reports.precision_coverage(results)
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert precision.tolist() == [1.0, 1.0, 2 / 3, 0.5]


PNGS = (
    "confusion_matrix.png",
    "worst_misreads.png",
    "reliability_diagram.png",
    "precision_coverage.png",
)


def test_write_reports_writes_files_a_person_can_open(synthetic, tmp_path):
    items = datasets.read_labeled(synthetic["crops"])[:3]
    pairs = [(item, result(item, "NOPE", 0.3)) for item in items]
    pairs.append((items[0], result(items[0], items[0].text, 0.97)))
    metrics = reports.write_reports(list("AB1"), list("AB7"), pairs, tmp_path / "out", 0.95)
    assert metrics == {"char_acc_1": 0.0, "char_acc_A": 1.0, "char_acc_B": 1.0}
    with open(tmp_path / "out" / "per_char_accuracy.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["char"], r["accuracy"]) for r in rows][0] == ("1", "0.0000")
    for name in PNGS:
        with Image.open(tmp_path / "out" / name) as image:
            assert image.format == "PNG" and min(image.size) >= 150
            assert len(np.unique(np.asarray(image.convert("L")))) > 2  # drawn, not blank


def test_nothing_to_show_still_gives_readable_files(tmp_path):
    assert reports.write_reports([], [], [], tmp_path) == {}
    for name in PNGS:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"
