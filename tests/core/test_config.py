import pytest

from anpr_core.config import (
    RegionConfig,
    available_regions,
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


def test_bad_pattern_is_refused():
    with pytest.raises(RegionError):
        RegionConfig(name="x", patterns=("@@-##",))


def test_round_trip_through_dict():
    region = load_region("br")
    assert RegionConfig.from_dict(region.to_dict()) == region
