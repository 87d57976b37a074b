import numpy as np
import pytest

from anpr_core.classify import REJECT
from anpr_core.config import ALPHABET, RegionConfig, learned_from_labels, load_region
from anpr_core.postprocess import read_plate

CLASSES = list(ALPHABET) + [REJECT]


def probs_for(*pieces: dict[str, float]) -> np.ndarray:
    """Probability rows: each piece's listed classes, the rest spread thinly."""
    rows = np.full((len(pieces), len(CLASSES)), 1e-4)
    for row, piece in zip(rows, pieces, strict=True):
        for char, p in piece.items():
            row[CLASSES.index(char)] = p
    return rows / rows.sum(axis=1, keepdims=True)


def sure(text: str) -> list[dict[str, float]]:
    return [{c: 0.97} for c in text]


@pytest.mark.parametrize(("confused", "fixed"), [("O", "0"), ("I", "1"), ("B", "8"), ("S", "5")])
def test_pattern_fixes_letter_digit_confusions(confused, fixed):
    region = load_region("br")
    pieces = sure("ABC") + [{confused: 0.6, fixed: 0.35}] + sure("234")
    read = read_plate(probs_for(*pieces), CLASSES, region)
    assert read.text == f"ABC{fixed}234"
    assert read.pattern == "@@@####"


def test_pattern_fixes_digit_in_letter_slot():
    pieces = [{"0": 0.6, "O": 0.35}] + sure("BC1234")
    read = read_plate(probs_for(*pieces), CLASSES, load_region("br"))
    assert read.text == "OBC1234"


def test_non_character_pieces_are_dropped():
    pieces = [{REJECT: 0.9, "1": 0.05}] + sure("ABC1234") + [{REJECT: 0.8, "I": 0.1}]
    read = read_plate(probs_for(*pieces), CLASSES, load_region("br"))
    assert read.text == "ABC1234"
    assert read.kept == (1, 2, 3, 4, 5, 6, 7)


def test_read_without_pattern_is_kept_but_weighed_down():
    region = RegionConfig(name="t", char_count=(2, 8), patterns=("@@@###",), pattern_weight=0.5)
    read = read_plate(probs_for(*sure("AB12")), CLASSES, region)
    assert read.text == "AB12" and read.pattern is None
    matched = read_plate(probs_for(*sure("ABC123")), CLASSES, region)
    assert matched.pattern == "@@@###" and matched.score > read.score


def test_confidence_and_alternatives():
    pieces = sure("ABC12") + [{"3": 0.7, "8": 0.25}] + sure("4")
    read = read_plate(probs_for(*pieces), CLASSES, load_region("br"), top_k=3)
    assert read.text == "ABC1234"
    assert 0.6 < read.confidence < 0.75
    assert np.isclose(read.confidence, np.prod(read.char_confidences))
    assert len(read.char_confidences) == 7
    texts = [t for t, _ in read.alternatives]
    assert texts[0] == "ABC1234" and "ABC1284" in texts
    confs = [c for _, c in read.alternatives[1:]]
    assert confs == sorted(confs, reverse=True)


def test_no_pieces_no_read():
    assert read_plate(np.zeros((0, len(CLASSES))), CLASSES, load_region("us")) is None


def test_alternatives_that_drop_characters_pay_for_them():
    # a shorter string that calls three sure characters "not a character" must not look more
    # likely than the read: every alternative is scored as a whole plate, like the read
    region = RegionConfig(name="t", char_count=(4, 8), patterns=("#@@@###", "####"))
    pieces = sure("4") + [{"O": 0.6, "0": 0.3}] + sure("UL881")
    read = read_plate(probs_for(*pieces), CLASSES, region, top_k=20)
    assert read.text == "4OUL881"
    texts = dict(read.alternatives)
    assert all(c <= read.confidence for c in texts.values())
    assert [t for t, _ in read.alternatives][0] == "4OUL881"
    shorter = [c for t, c in read.alternatives if len(t) < len(read.text)]
    assert shorter and all(c < 0.01 * read.confidence for c in shorter)


def test_same_glyphs_let_the_format_slot_decide():
    """O and 0 printed alike: a digit slot reads the glyph as 0 however sure the classifier
    is of O, where without ``same_glyphs`` the weak format prior cannot outweigh it."""
    plain = RegionConfig(name="t", char_count=(5, 8), patterns=("@@###@@",), pattern_weight=0.9)
    alike = RegionConfig(**{**plain.__dict__, "same_glyphs": ("O0",)})
    pieces = sure("RK3") + [{"O": 0.98, "0": 0.015}] + sure("1AH")
    assert read_plate(probs_for(*pieces), CLASSES, plain).text == "RK3O1AH"
    read = read_plate(probs_for(*pieces), CLASSES, alike)
    assert read.text == "RK301AH" and read.pattern == "@@###@@"
    assert read.char_confidences[3] > 0.99  # the glyph's probability, O's and 0's together


def test_formats_that_read_a_glyph_both_ways_tie_and_its_shape_decides():
    region = RegionConfig(
        name="t", char_count=(5, 8), patterns=("@@##@@@", "@@###@@"), same_glyphs=("O0",)
    )
    zero = sure("TS26") + [{"0": 0.9, "O": 0.08}] + sure("AK")
    assert read_plate(probs_for(*zero), CLASSES, region).text == "TS260AK"
    letter = sure("TS26") + [{"O": 0.9, "0": 0.08}] + sure("AK")
    assert read_plate(probs_for(*letter), CLASSES, region).text == "TS26OAK"


def test_formats_that_tie_read_as_the_commoner_in_training():
    """A tie between formats goes to the one more training plates matched, before the shape:
    the shape of one glyph says little where the region prints it alike."""
    plain = RegionConfig(
        name="t", char_count=(5, 8), patterns=("@@##@@@", "@@###@@"), same_glyphs=("O0",)
    )
    letter = sure("TS26") + [{"O": 0.9, "0": 0.08}] + sure("AK")
    assert read_plate(probs_for(*letter), CLASSES, plain).text == "TS26OAK"
    learned = learned_from_labels(plain, ["AB123CD", "XY987ZW", "KL12MNO"])
    assert learned.pattern_counts == (1, 2)
    assert read_plate(probs_for(*letter), CLASSES, learned).text == "TS260AK"
    other = sure("TS26") + [{"Q": 0.9, "0": 0.08}] + sure("AK")  # no tie: the scores decide
    assert read_plate(probs_for(*other), CLASSES, learned).text == "TS26QAK"


def test_a_glyph_no_format_decides_reads_as_the_commoner_in_training():
    """Where every character printed alike may stand (a read matching no pattern), the glyph
    reads as the one training labels use most; a format slot still decides where it can."""
    plain = RegionConfig(
        name="t", char_count=(5, 8), patterns=("@@###@@",), pattern_weight=0.9, same_glyphs=("O0",)
    )
    learned = learned_from_labels(plain, ["AB120CD", "XY907ZW", "1B20440"])
    assert learned.glyph_counts == (0, 4)
    free = sure("1B7") + [{"O": 0.9, "0": 0.08}] + sure("44")
    assert read_plate(probs_for(*free), CLASSES, plain).text == "1B7O44"
    read = read_plate(probs_for(*free), CLASSES, learned)
    assert read.text == "1B7044" and read.pattern is None
    assert read.char_confidences[3] > 0.97  # the glyph's probability, O's and 0's together
    assert read.alternatives[0] == (read.text, read.confidence)
    letter = sure("RK3") + sure("01") + [{"O": 0.9, "0": 0.08}] + sure("H")
    assert read_plate(probs_for(*letter), CLASSES, learned).text == "RK301OH"
