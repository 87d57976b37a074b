import pytest

from anpr_core.config import (
    PLATE_STYLES,
    RegionConfig,
    SynthConfig,
    available_regions,
    learned_from_labels,
    load_region,
    matching_pattern,
    pattern_slots,
)
from anpr_core.errors import RegionError


def test_shipped_regions_load():
    assert {"us", "eu", "br"} <= set(available_regions())
    for name in available_regions():
        region = load_region(name)
        assert region.name == name
        assert region.char_count[0] <= region.char_count[1]


def test_unknown_region_names_the_choices():
    with pytest.raises(RegionError, match="unknown region 'xx'.*br, eu, us"):
        load_region("xx")


def test_user_region_file(tmp_path):
    path = tmp_path / "nl.toml"
    path.write_text('name = "nl"\nplate_aspect = 4.7\npatterns = ["@@##@@", "##@@@#"]\n')
    region = load_region(path)
    assert region.name == "nl" and region.patterns == ("@@##@@", "##@@@#")


def test_region_file_with_unknown_key_is_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nplate_aspekt = 2\n')
    with pytest.raises(RegionError, match="unknown keys"):
        load_region(path)


def test_pattern_slots_and_matching():
    slots = pattern_slots("@#[A-C]?7")
    assert len(slots) == 5
    assert "Z" in slots[0] and "5" in slots[1] and slots[2] == frozenset("ABC")
    assert slots[4] == frozenset("7")
    assert matching_pattern("ABC1234", ("@@@#@##", "@@@####")) == "@@@####"
    assert matching_pattern("ABC1D23", ("@@@#@##", "@@@####")) == "@@@#@##"
    assert matching_pattern("AB12", ("@@@####",)) is None


@pytest.mark.parametrize("text", ["ABC1234", "HH9G5W", "1049338"])
def test_us_region_knows_common_state_formats(text):
    # the generic 3+4, Missouri's letter-letter-digit-letter-digit-letter, New Hampshire numeric
    assert matching_pattern(text, load_region("us").patterns) is not None


def test_bad_pattern_is_refused():
    with pytest.raises(RegionError):
        RegionConfig(name="x", patterns=("@@-##",))


def test_round_trip_through_dict():
    region = load_region("br")
    assert RegionConfig.from_dict(region.to_dict()) == region


def test_shipped_regions_say_what_the_synthesizer_draws():
    us, eu, br = (load_region(name).synth for name in ("us", "eu", "br"))
    assert us == SynthConfig((960, 540), (0.10, 0.22), "us")
    assert eu == SynthConfig((800, 600), (0.18, 0.35), "eu")
    assert br.plate_style == "br" and br.scene_size == (1024, 768)


def test_region_file_without_synth_table_gets_the_defaults(tmp_path):
    path = tmp_path / "nl.toml"
    path.write_text('name = "nl"\nplate_aspect = 4.7\n')
    assert load_region(path).synth == SynthConfig()
    assert SynthConfig() == SynthConfig((960, 720), (0.15, 0.30), "plain")


def test_synth_table_of_a_user_region_file(tmp_path):
    path = tmp_path / "nl.toml"
    path.write_text('name = "nl"\n[synth]\nscene_size = [640, 480]\nplate_style = "eu"\n')
    synth = load_region(path).synth
    assert synth == SynthConfig(scene_size=(640, 480), plate_style="eu")


def test_unknown_plate_style_is_refused_with_the_choices(tmp_path):
    path = tmp_path / "nl.toml"
    path.write_text('name = "nl"\n[synth]\nplate_style = "dutch"\n')
    with pytest.raises(RegionError, match="region nl: unknown plate_style 'dutch'.*plain, us"):
        load_region(path)


@pytest.mark.parametrize(
    "table, message",
    [
        ("scene_size = [640]", "scene_size"),
        ("scene_size = [640.5, 480]", "scene_size"),
        ("plate_width_fraction = [0.3, 0.2]", "plate_width_fraction"),
        ("plate_width_fraction = [0.0, 0.2]", "plate_width_fraction"),
        ("plate_widht_fraction = [0.1, 0.2]", "unknown keys in \\[synth\\]"),
    ],
)
def test_bad_synth_table_is_refused(tmp_path, table, message):
    path = tmp_path / "nl.toml"
    path.write_text(f'name = "nl"\n[synth]\n{table}\n')
    with pytest.raises(RegionError, match=message):
        load_region(path)


def test_synth_round_trips_through_plain_data():
    region = load_region("us")
    stored = region.to_dict()
    assert stored["synth"] == {
        "scene_size": [960, 540],
        "plate_width_fraction": [0.10, 0.22],
        "plate_style": "us",
    }
    assert RegionConfig.from_dict(stored) == region
    assert RegionConfig.from_dict(stored).synth.scene_size == (960, 540)


def test_region_stored_before_the_synth_fields_still_loads():
    stored = load_region("eu").to_dict()
    del stored["synth"]
    older = RegionConfig.from_dict(stored)
    assert older.synth == SynthConfig()
    assert older.patterns == load_region("eu").patterns


def test_every_plate_style_has_a_painter():
    from anpr_core.synth import PLATE_PAINTERS

    assert set(PLATE_PAINTERS) == set(PLATE_STYLES)


def test_same_glyphs_are_checked_and_default_to_none():
    with pytest.raises(RegionError, match="same_glyphs"):
        RegionConfig(name="t", same_glyphs=("O",))
    stored = load_region("eu").to_dict()
    assert stored["same_glyphs"] == ["O0"]
    del stored["same_glyphs"]  # a version registered before the key reads as it did
    assert RegionConfig.from_dict(stored).same_glyphs == ()


def test_pattern_and_glyph_counts_are_learned_and_checked():
    region = load_region("br")
    learned = learned_from_labels(region, ["ABC1234", "ABC1D23", "XYZ9876", "NOT A PLATE", "O0O0"])
    assert learned.pattern_counts == (2, 1)
    assert learned.glyph_counts == (3, 2)  # O, then 0, as br.toml's same_glyphs names them
    assert RegionConfig.from_dict(learned.to_dict()) == learned  # stored with the version
    assert region.pattern_counts == ()  # a shipped region, or an older version, has none
    with pytest.raises(RegionError, match="pattern_counts"):
        RegionConfig(name="t", patterns=("@@#",), pattern_counts=(1, 2))
    with pytest.raises(RegionError, match="glyph_counts"):
        RegionConfig(name="t", same_glyphs=("O0",), glyph_counts=(1,))
