"""Region knowledge (plate geometry, character counts, format patterns) loaded from data files.

ANPR is region-specific: a priori knowledge of what a plate looks like wins over cleverness.
Each region is one TOML file under ``anpr_core/regions/``; a user adds a region by adding a
file there, or by passing the path of their own file wherever a region name is accepted.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from anpr_core.errors import RegionError

REGIONS_DIR = Path(__file__).parent / "regions"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTERS = ALPHABET[10:]
DIGITS = ALPHABET[:10]
# The plate painters of anpr_core.synth, by style; "plain" is for regions without a style.
PLATE_STYLES = ("plain", "us", "eu", "br")


@dataclass(frozen=True)
class SynthConfig:
    """What the synthesizer draws for a region: scene size, plate size in it, plate style.

    The ``[synth]`` table of a region file; a region without one gets these defaults.
    """

    scene_size: tuple[int, int] = (960, 720)  # (width, height) of a scene in pixels
    plate_width_fraction: tuple[float, float] = (0.15, 0.30)  # plate width / scene width
    plate_style: str = "plain"  # one of PLATE_STYLES

    @classmethod
    def from_dict(cls, data: dict, region: str = "?") -> SynthConfig:
        """The config described by ``data`` (the ``[synth]`` table of region ``region``)."""
        if not isinstance(data, dict):
            raise RegionError(f"region {region}: [synth] must be a table, got {data!r}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise RegionError(f"region {region}: unknown keys in [synth] {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class RegionConfig:
    """What plates of one region look like: geometry, character counts and format patterns.

    Patterns use ``@`` for a letter, ``#`` for a digit, ``?`` for either, a literal character
    for itself, and ``[...]`` for a class of characters, as in OpenALPR's pattern files.
    """

    name: str
    description: str = ""
    plate_aspect: float = 2.0
    aspect_range: tuple[float, float] = (1.4, 6.5)
    plate_width_fraction: tuple[float, float] = (0.02, 0.8)
    char_count: tuple[int, int] = (2, 9)
    char_height_fraction: tuple[float, float] = (0.3, 0.9)
    char_aspect_range: tuple[float, float] = (0.1, 1.05)
    polarity: tuple[str, ...] = ("dark_on_light",)
    pattern_weight: float = 1.0
    patterns: tuple[str, ...] = field(default_factory=tuple)
    # An end piece farther from its neighbour than this many typical gaps is not a character
    # (e.g. the blue country band of EU plates); 0 keeps every piece.
    max_end_gap: float = 0.0
    # Groups of characters printed alike in the region's font (e.g. "O0"): a format slot that
    # allows one of a group and not the others reads the group's summed probability.
    same_glyphs: tuple[str, ...] = ()
    # Learned by ``learned_from_labels`` when a version is trained, empty in region files: how
    # many training plates matched each pattern (aligned with ``patterns``; formats that tie
    # read as the commoner), and how often training labels use each character of
    # ``same_glyphs`` (aligned with its characters; where every one of a group may stand, the
    # glyph reads as the commonest).
    pattern_counts: tuple[int, ...] = ()
    glyph_counts: tuple[int, ...] = ()
    synth: SynthConfig = field(default_factory=SynthConfig)

    def __post_init__(self) -> None:
        for polarity in self.polarity:
            if polarity not in ("dark_on_light", "light_on_dark"):
                raise RegionError(f"region {self.name}: unknown polarity {polarity!r}")
        if not 0.0 < self.pattern_weight <= 1.0:
            raise RegionError(f"region {self.name}: pattern_weight must be in (0, 1]")
        for pattern in self.patterns:
            pattern_slots(pattern)
        if self.pattern_counts and len(self.pattern_counts) != len(self.patterns):
            raise RegionError(
                f"region {self.name}: pattern_counts must give one count per pattern"
                f" ({len(self.patterns)}), got {len(self.pattern_counts)}"
            )
        if self.glyph_counts and len(self.glyph_counts) != len("".join(self.same_glyphs)):
            raise RegionError(
                f"region {self.name}: glyph_counts must give one count per character of"
                f" same_glyphs, got {len(self.glyph_counts)}"
            )
        for group in self.same_glyphs:
            if len(group) < 2 or set(group) - set(ALPHABET):
                raise RegionError(
                    f"region {self.name}: same_glyphs group {group!r} must be two or more of A-Z0-9"
                )
        _check_synth(self.name, self.synth)

    def to_dict(self) -> dict:
        """Plain-data form (lists, not tuples), for logging next to a model."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> RegionConfig:
        """The config described by ``data`` (as read from TOML or from a model's metadata)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise RegionError(f"region {data.get('name', '?')}: unknown keys {unknown}")
        if "name" not in data:
            raise RegionError("region file has no 'name'")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        if not isinstance(values.get("synth", SynthConfig()), SynthConfig):
            values["synth"] = SynthConfig.from_dict(values["synth"], data["name"])
        return cls(**values)


def _check_synth(region: str, synth: SynthConfig) -> None:
    """Raise RegionError unless ``synth`` is a SynthConfig the synthesizer can draw."""
    if not isinstance(synth, SynthConfig):
        raise RegionError(f"region {region}: synth must be a SynthConfig, got {synth!r}")
    if synth.plate_style not in PLATE_STYLES:
        raise RegionError(
            f"region {region}: unknown plate_style {synth.plate_style!r} in [synth]:"
            f" choose one of {', '.join(PLATE_STYLES)}"
        )
    size = synth.scene_size
    if not (
        isinstance(size, tuple)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise RegionError(
            f"region {region}: scene_size in [synth] must be [width, height] in whole pixels,"
            f" got {size!r}"
        )
    fraction = synth.plate_width_fraction
    if not (
        isinstance(fraction, tuple)
        and len(fraction) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in fraction)
        and 0.0 < fraction[0] <= fraction[1] <= 1.0
    ):
        raise RegionError(
            f"region {region}: plate_width_fraction in [synth] must be [low, high]"
            f" with 0 < low <= high <= 1, got {fraction!r}"
        )


def _plain(value):
    """``value`` with tuples turned into lists, at any depth (for JSON and YAML)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def available_regions() -> list[str]:
    """Names of the regions shipped with anpr_core."""
    return sorted(p.stem for p in REGIONS_DIR.glob("*.toml"))


def load_region(name_or_path: str | Path) -> RegionConfig:
    """The RegionConfig for a shipped region name (``us``) or a path to a region TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = REGIONS_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise RegionError(
                f"unknown region {name_or_path!r}: choose one of {', '.join(available_regions())}"
                " or pass the path of a region .toml file"
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegionError(f"cannot read region file {path}: {exc}") from exc
    return RegionConfig.from_dict(data)


_SLOT = re.compile(r"\[[^\]]+\]|.")


def pattern_slots(pattern: str) -> list[frozenset[str]]:
    """The set of characters allowed at each position of ``pattern``."""
    slots = []
    for token in _SLOT.findall(pattern):
        if token == "@":
            slots.append(frozenset(LETTERS))
        elif token == "#":
            slots.append(frozenset(DIGITS))
        elif token == "?":
            slots.append(frozenset(ALPHABET))
        elif token.startswith("["):
            slots.append(frozenset(_expand_class(token[1:-1])))
        elif token in ALPHABET:
            slots.append(frozenset(token))
        else:
            raise RegionError(f"bad pattern {pattern!r}: {token!r} is not @, #, ?, [..] or A-Z0-9")
    return slots


def _expand_class(body: str) -> set[str]:
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            chars.update(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    bad = chars - set(ALPHABET)
    if bad:
        raise RegionError(f"bad pattern class [{body}]: {sorted(bad)} not in A-Z0-9")
    return chars


def learned_from_labels(region: RegionConfig, texts: Iterable[str]) -> RegionConfig:
    """``region`` with ``pattern_counts`` and ``glyph_counts`` learned from training plates'
    ``texts`` (a text counts for the first pattern it matches, as a read names it)."""
    texts = list(texts)
    patterns = Counter(matching_pattern(text, region.patterns) for text in texts)
    chars = Counter("".join(texts))
    return replace(
        region,
        pattern_counts=tuple(patterns[p] for p in region.patterns),
        glyph_counts=tuple(chars[c] for c in "".join(region.same_glyphs)),
    )


def matching_pattern(text: str, patterns: tuple[str, ...]) -> str | None:
    """The first pattern that ``text`` matches, or None."""
    for pattern in patterns:
        slots = pattern_slots(pattern)
        if len(slots) == len(text) and all(c in s for c, s in zip(text, slots, strict=True)):
            return pattern
    return None
