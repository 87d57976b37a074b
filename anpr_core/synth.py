"""Synthetic labeled plates and scenes, for tests, demos and training data.

Everything is drawn from the ``numpy.random.Generator`` passed in, so one seed gives the same
arrays byte for byte; nothing is downloaded or written. Characters use the FreeType font that
ships inside Pillow (``ImageFont.load_default(size=...)``), made bold with a stroke and
condensed to fit the plate. What is drawn for a region (scene size, plate size in the scene,
plate style ``us``, ``eu``, ``br`` or ``plain``) comes from its ``[synth]`` table
(``RegionConfig.synth``); a region without one gets a plain white plate of its
``plate_aspect``.

Examples
--------
>>> import numpy as np
>>> from anpr_core.config import load_region
>>> scene = synth_scene(np.random.default_rng(7), load_region("eu"))
>>> (box, text), = scene.plates
>>> scene.image.dtype, len(scene.quads[0])
(dtype('uint8'), 4)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from statistics import NormalDist
from types import MappingProxyType

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from anpr_core.config import ALPHABET, RegionConfig, pattern_slots
from anpr_core.records import Box, Quad

Color = tuple[float, float, float]  # B, G, R in 0..255

FONT_CAP_RATIO = 0.69  # cap height / font size of Pillow's bundled font (Aileron)
MIN_CONDENSE = 0.42  # narrowest glyph width / natural width before characters shrink instead
MIN_SCENE_CHAR_PX = 17  # character height in a scene before perspective jitter
CORNER_JITTER = 0.08  # corner displacement / plate height
MAX_ROTATION_DEG = 6.0
MAX_BLUR_SIGMA = 1.2
# Training crops (``training_crop``): plate heights in pixels, drawn log-uniformly (the
# rectified plates of small scene plates to large crops); JPEG qualities; the share smeared by
# motion, and how far per 100 pixels of plate height. A stream number keeps their random draws
# apart from ``synth_crops``' of the same seed.
TRAIN_CROP_HEIGHT = (28, 170)
TRAIN_JPEG_QUALITY = (25, 95)
MOTION_BLUR_SHARE = 0.3
MAX_MOTION_PX = 4.0
TRAINING_STREAM = 1

US_STATES = (
    "CALIFORNIA", "TEXAS", "NEW YORK", "FLORIDA", "OHIO", "ILLINOIS", "GEORGIA", "ARIZONA",
    "OREGON", "NEVADA", "COLORADO", "MICHIGAN", "VIRGINIA", "WASHINGTON", "MAINE", "IOWA",
    "UTAH", "MONTANA", "KANSAS", "VERMONT",
)  # fmt: skip
US_SLOGANS = (
    "LAND OF LINCOLN", "SUNSHINE STATE", "EMPIRE STATE", "GREAT LAKES", "THE LONE STAR STATE",
    "LIVE FREE OR DIE", "GRAND CANYON STATE", "GREEN MOUNTAINS", "BIG SKY COUNTRY",
)  # fmt: skip
EU_COUNTRIES = ("D", "F", "NL", "B", "I", "E", "PL", "CZ", "A", "S", "L", "P", "IRL", "FIN")
BR_CITIES = (
    "SAO PAULO - SP", "RIO DE JANEIRO - RJ", "CURITIBA - PR", "BELO HORIZONTE - MG",
    "SALVADOR - BA", "RECIFE - PE", "PORTO ALEGRE - RS", "CAMPINAS - SP", "GOIANIA - GO",
)  # fmt: skip
SIGN_WORDS = ("STOP", "PARKING", "EXIT", "SALE", "OPEN", "HOTEL", "CAFE", "TAXI", "BUS")

US_PALE = ((245, 245, 245), (190, 238, 250), (248, 228, 200), (225, 240, 248), (235, 245, 235))
US_DARK_INK = ((95, 35, 20), (25, 25, 25), (35, 30, 140), (40, 85, 25))
US_DARK_BACKGROUND = ((70, 25, 15), (30, 30, 30), (30, 60, 20), (35, 25, 90))
US_LIGHT_INK = ((245, 245, 245), (210, 240, 250), (120, 215, 245))
EU_BACKGROUNDS = ((245, 245, 245), (245, 245, 245), (20, 200, 245))
EU_BLUE = (150, 55, 5)
CAR_COLORS = (
    (235, 235, 235), (185, 185, 180), (30, 30, 30), (40, 40, 190), (150, 70, 25), (90, 90, 90),
    (60, 110, 50), (60, 190, 225), (120, 40, 60), (200, 170, 140),
)  # fmt: skip
STICKER_COLORS = ((40, 200, 250), (60, 60, 220), (80, 180, 60), (230, 140, 40))


@dataclass(frozen=True, eq=False)
class SynthPlate:
    """A flat rendered plate with its text and each character's box (x, y, w, h), left to right."""

    image: np.ndarray
    text: str
    char_boxes: tuple[Box, ...]


@dataclass(frozen=True, eq=False)
class SynthScene:
    """A scene with its plates as ((x, y, w, h), text) and their quads, clockwise from top-left."""

    image: np.ndarray
    plates: tuple[tuple[Box, str], ...]
    quads: tuple[Quad, ...]


@dataclass(frozen=True)
class _TextArea:
    """Where and in which colour a plate style wants its main characters."""

    ink: Color
    char_height: int
    left: int
    right: int
    center_y: float
    group_gap: bool = False  # extra space where letters meet digits


# ---------------------------------------------------------------------------------------------
# Text


def random_plate_text(rng: np.random.Generator, region: RegionConfig) -> str:
    """A random plate string that matches one of the region's patterns (A-Z0-9, upper case).

    A region without patterns gets a random length within ``char_count`` of any characters.
    """
    if region.patterns:
        pattern = region.patterns[int(rng.integers(len(region.patterns)))]
        slots = [sorted(slot) for slot in pattern_slots(pattern)]
    else:
        low, high = region.char_count
        slots = [list(ALPHABET)] * int(rng.integers(low, high + 1))
    return "".join(slot[int(rng.integers(len(slot)))] for slot in slots)


# ---------------------------------------------------------------------------------------------
# Plates


def synth_plate(
    rng: np.random.Generator, region: RegionConfig, text: str | None = None
) -> SynthPlate:
    """A flat plate of the region's style showing ``text`` (random when None), with char boxes."""
    if text is None:
        text = random_plate_text(rng, region)
    if not text or any(c not in ALPHABET for c in text):
        raise ValueError(f"plate text must be non-empty A-Z0-9, got {text!r}")
    canvas, area = PLATE_PAINTERS[region.synth.plate_style](rng, region, text)
    boxes = _draw_chars(rng, canvas, text, area, region.char_aspect_range)
    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return SynthPlate(image=image, text=text, char_boxes=boxes)


def _paint_us_plate(
    rng: np.random.Generator, region: RegionConfig, text: str
) -> tuple[np.ndarray, _TextArea]:
    """A 2:1 plate: state name on top, maybe a slogan, a sticker or bolts; 10% light on dark."""
    h = int(rng.integers(110, 131))
    w = round(h * region.plate_aspect * rng.uniform(0.98, 1.03))
    dark = "light_on_dark" in region.polarity and rng.random() < 0.1
    if dark:
        background = _jitter(rng, _pick(rng, US_DARK_BACKGROUND), 10)
        ink = _jitter(rng, _pick(rng, US_LIGHT_INK), 8)
        accent = ink
    else:
        background = _jitter(rng, _pick(rng, US_PALE), 8)
        ink = _jitter(rng, _pick(rng, US_DARK_INK), 10)
        accent = ink if rng.random() < 0.6 else _jitter(rng, _pick(rng, US_DARK_INK), 10)
    canvas = _plate_background(rng, h, w, background, gradient_chance=0.4)
    inset, thickness = _draw_border(rng, canvas, accent, chance=0.85)
    if rng.random() < 0.3:
        _draw_sticker(rng, canvas)
    elif rng.random() < 0.5:
        for fx in (0.2, 0.8):
            _draw_bolt(rng, canvas, (fx * w, 0.1 * h), 0.028 * h)
    if rng.random() < 0.9:
        state = _pick(rng, US_STATES)
        _draw_label(
            canvas, state, h * rng.uniform(0.085, 0.11), (w / 2, 0.05 * h), accent, 0.42 * w
        )
    if rng.random() < 0.4:
        slogan = _pick(rng, US_SLOGANS)
        cap = h * rng.uniform(0.055, 0.07)
        _draw_label(canvas, slogan, cap, (w / 2, 0.935 * h - cap), accent, 0.6 * w)
    margin = inset + thickness + max(3, round(0.035 * w))
    area = _TextArea(
        ink=ink,
        char_height=round(h * rng.uniform(0.50, 0.58)),
        left=margin,
        right=w - margin,
        center_y=h * rng.uniform(0.51, 0.54),
    )
    return canvas, area


def _paint_eu_plate(
    rng: np.random.Generator, region: RegionConfig, text: str
) -> tuple[np.ndarray, _TextArea]:
    """A 4.7:1 white or yellow plate with a blue band on the left and a thin black border."""
    h = int(rng.integers(100, 121))
    w = round(h * region.plate_aspect * rng.uniform(0.98, 1.02))
    canvas = _plate_background(rng, h, w, _jitter(rng, _pick(rng, EU_BACKGROUNDS), 8), 0.15)
    edge = int(rng.integers(1, 4)) + int(rng.integers(2, 4))
    band_right = round(0.08 * w)
    canvas[edge : h - edge, edge:band_right] = _jitter(rng, EU_BLUE, 15)
    band_center = (edge + band_right) / 2
    band_width = band_right - edge
    if rng.random() < 0.8:
        _draw_stars(canvas, (band_center, 0.32 * h), 0.3 * band_width, max(1.0, 0.05 * band_width))
    if rng.random() < 0.85:
        country = _pick(rng, EU_COUNTRIES)
        cap = 0.2 * h
        _draw_label(
            canvas, country, cap, (band_center, 0.62 * h), (240, 240, 240), 0.8 * band_width
        )
    black = _jitter(rng, (20, 20, 20), 6)
    cv2.rectangle(canvas, (edge // 2, edge // 2), (w - 1 - edge // 2, h - 1 - edge // 2), black, 2)
    margin = max(4, round(0.025 * w))
    area = _TextArea(
        ink=black,
        char_height=round(h * rng.uniform(0.55, 0.65)),
        left=band_right + margin,
        right=w - edge - margin,
        center_y=h * rng.uniform(0.48, 0.52),
        group_gap=bool(rng.random() < 0.5),
    )
    return canvas, area


def _paint_br_plate(
    rng: np.random.Generator, region: RegionConfig, text: str
) -> tuple[np.ndarray, _TextArea]:
    """A 3.1:1 grey plate, maybe with a city name on top; Mercosur texts may get a blue strip."""
    h = int(rng.integers(105, 126))
    w = round(h * region.plate_aspect * rng.uniform(0.98, 1.02))
    mercosur = len(text) == 7 and text[4].isalpha() and rng.random() < 0.75
    level = rng.uniform(228, 248) if mercosur else rng.uniform(150, 205)
    canvas = _plate_background(rng, h, w, _jitter(rng, (level, level, level), 6), 0.3)
    ink = _jitter(rng, (30, 30, 30), 10)
    inset, thickness = _draw_border(rng, canvas, ink, chance=0.9)
    edge = inset + thickness
    if mercosur:
        canvas[edge : round(0.2 * h), edge : w - edge] = _jitter(rng, EU_BLUE, 15)
        _draw_label(canvas, "BRASIL", 0.09 * h, (w / 2, 0.055 * h), (240, 240, 240), 0.4 * w)
        char_height, center_y = h * rng.uniform(0.5, 0.58), h * rng.uniform(0.59, 0.61)
    elif rng.random() < 0.6:
        city = _pick(rng, BR_CITIES)
        _draw_label(canvas, city, h * rng.uniform(0.09, 0.11), (w / 2, 0.05 * h), ink, 0.7 * w)
        char_height, center_y = h * rng.uniform(0.5, 0.58), h * rng.uniform(0.57, 0.6)
    else:
        char_height, center_y = h * rng.uniform(0.55, 0.65), h * rng.uniform(0.48, 0.52)
    margin = edge + max(4, round(0.035 * w))
    area = _TextArea(
        ink=ink,
        char_height=round(char_height),
        left=margin,
        right=w - margin,
        center_y=center_y,
        group_gap=bool(rng.random() < 0.6),
    )
    return canvas, area


def _paint_plain_plate(
    rng: np.random.Generator, region: RegionConfig, text: str
) -> tuple[np.ndarray, _TextArea]:
    """A plain plate for regions without a style: white with black characters and border."""
    h = int(rng.integers(100, 121))
    w = round(h * region.plate_aspect * rng.uniform(0.98, 1.02))
    background, ink = _jitter(rng, (240, 240, 240), 8), _jitter(rng, (25, 25, 25), 8)
    if "dark_on_light" not in region.polarity:
        background, ink = ink, background
    canvas = _plate_background(rng, h, w, background, gradient_chance=0.2)
    inset, thickness = _draw_border(rng, canvas, ink, chance=0.9)
    margin = inset + thickness + max(4, round(0.035 * w))
    area = _TextArea(
        ink=ink,
        char_height=round(h * rng.uniform(0.55, 0.65)),
        left=margin,
        right=w - margin,
        center_y=h * rng.uniform(0.48, 0.52),
    )
    return canvas, area


PlatePainter = Callable[[np.random.Generator, RegionConfig, str], tuple[np.ndarray, _TextArea]]

# The painters of plate backgrounds by style (RegionConfig.synth.plate_style; the names are
# config.PLATE_STYLES, so that an unknown style is refused when a region loads): each returns
# the float32 canvas and where its characters go.
PLATE_PAINTERS: MappingProxyType[str, PlatePainter] = MappingProxyType(
    {
        "plain": _paint_plain_plate,
        "us": _paint_us_plate,
        "eu": _paint_eu_plate,
        "br": _paint_br_plate,
    }
)


def _plate_background(
    rng: np.random.Generator, h: int, w: int, color: Color, gradient_chance: float
) -> np.ndarray:
    """A float32 (h, w, 3) canvas of ``color``, sometimes fading softly to a nearby colour."""
    canvas = np.empty((h, w, 3), np.float32)
    canvas[:] = color
    if rng.random() < gradient_chance:
        other = np.array(_jitter(rng, np.asarray(color) * rng.uniform(0.88, 1.1), 6), np.float32)
        vertical = rng.random() < 0.7
        t = np.linspace(0.0, 1.0, h if vertical else w, dtype=np.float32)
        t = t[:, None, None] if vertical else t[None, :, None]
        canvas += (other - canvas[0, 0]) * t
    return canvas


def _draw_border(
    rng: np.random.Generator, canvas: np.ndarray, color: Color, chance: float
) -> tuple[int, int]:
    """(inset, thickness) of the thin border drawn with probability ``chance`` (0, 0 if none)."""
    if rng.random() >= chance:
        return 0, 0
    h, w = canvas.shape[:2]
    inset, thickness = int(rng.integers(2, 5)), int(rng.integers(2, 4))
    half = thickness // 2
    top_left = (inset + half, inset + half)
    bottom_right = (w - 1 - inset - half, h - 1 - inset - half)
    cv2.rectangle(canvas, top_left, bottom_right, color, thickness, cv2.LINE_AA)
    return inset, thickness


def _draw_sticker(rng: np.random.Generator, canvas: np.ndarray) -> None:
    """Paint a small registration sticker, with a tiny year on it, in a top corner."""
    h, w = canvas.shape[:2]
    sw, sh = round(w * rng.uniform(0.09, 0.14)), round(h * rng.uniform(0.1, 0.13))
    x = round(0.06 * w) if rng.random() < 0.5 else w - round(0.06 * w) - sw
    y = round(0.05 * h)
    color = _jitter(rng, _pick(rng, STICKER_COLORS), 15)
    cv2.rectangle(canvas, (x, y), (x + sw - 1, y + sh - 1), color, -1)
    year = f"{int(rng.integers(0, 100)):02d}"
    _draw_label(canvas, year, 0.55 * sh, (x + sw / 2, y + 0.22 * sh), (30, 30, 30), 0.8 * sw)


def _draw_bolt(
    rng: np.random.Generator, canvas: np.ndarray, center: tuple[float, float], radius: float
) -> None:
    """Paint a metal bolt head."""
    level = rng.uniform(140, 200)
    cx, cy = round(center[0]), round(center[1])
    r = max(2, round(radius))
    cv2.circle(canvas, (cx, cy), r, (level, level, level), -1, cv2.LINE_AA)
    cv2.circle(canvas, (cx, cy), r, (level * 0.5,) * 3, 1, cv2.LINE_AA)


def _draw_stars(
    canvas: np.ndarray, center: tuple[float, float], radius: float, star_radius: float
) -> None:
    """Paint the EU ring of twelve small yellow stars (as dots)."""
    for k in range(12):
        angle = 2 * np.pi * k / 12
        x = center[0] + radius * np.cos(angle)
        y = center[1] + radius * np.sin(angle)
        cv2.circle(canvas, (round(x * 4), round(y * 4)), round(star_radius * 4), (0, 205, 250), -1,
                   cv2.LINE_AA, 2)  # fmt: skip


def _draw_label(
    canvas: np.ndarray,
    text: str,
    cap_height: float,
    top_center: tuple[float, float],
    color: Color,
    max_width: float,
) -> None:
    """Paint a small line of text (state name, slogan, city) centred at ``top_center``."""
    height = max(5, round(cap_height))
    alpha = _text_alpha(text, height, stroke=0)
    width = min(alpha.shape[1], max(1, round(max_width)))
    alpha = _resize(alpha, width, height)
    x = round(top_center[0] - width / 2)
    _blend(canvas, alpha, x, round(top_center[1]), color)


# ---------------------------------------------------------------------------------------------
# Characters


def _draw_chars(
    rng: np.random.Generator,
    canvas: np.ndarray,
    text: str,
    area: _TextArea,
    aspect_range: tuple[float, float],
) -> tuple[Box, ...]:
    """Tight ink boxes of ``text`` painted bold and condensed into ``area`` of ``canvas``."""
    size = round(area.char_height / FONT_CAP_RATIO)
    stroke = max(1, round(size * rng.uniform(0.03, 0.055)))
    crops = [_glyph_crop(c, size, stroke) for c in text]
    aspects = np.array([c.shape[1] / c.shape[0] for c in crops])
    gaps = _char_gaps(rng, text, area.group_gap)
    room = area.right - area.left
    height, widths, steps = _fit_chars(
        aspects, gaps, room, area.char_height, rng.uniform(0.8, 1.0), aspect_range
    )
    slots = np.maximum(widths, round(0.55 * float(np.median(widths))))
    slack = max(0, room - int(slots.sum() + steps.sum()))
    x = area.left + round(slack / 2 + rng.uniform(-0.25, 0.25) * slack)
    y = round(area.center_y - height / 2)
    boxes = []
    for i, crop in enumerate(crops):
        alpha = _single_blob(_resize(crop, int(widths[i]), height))
        left = x + (int(slots[i]) - int(widths[i])) // 2
        _blend(canvas, alpha, left, y, area.ink)
        boxes.append(_ink_box(alpha, left, y))
        x += int(slots[i]) + (int(steps[i]) if i < len(steps) else 0)
    return tuple(boxes)


def _fit_chars(
    aspects: np.ndarray,
    gaps: np.ndarray,
    room: int,
    height: int,
    condense: float,
    aspect_range: tuple[float, float],
) -> tuple[int, np.ndarray, np.ndarray]:
    """(height, widths, gaps) in pixels of characters that fit in ``room`` pixels.

    Glyphs are condensed first (down to MIN_CONDENSE of their natural width), then shrunk. Each
    width stays inside the region's character aspect range, with a margin for blur and
    perspective, so that ``I`` is not a hairline and ``W`` is not wider than it is tall.
    """
    low = max(0.16, aspect_range[0] + 0.05)
    high = max(low, min(0.95, aspect_range[1] - 0.08))
    while True:
        widths = np.clip(np.round(aspects * condense * height), low * height, high * height)
        widths = np.maximum(widths, 2).astype(int)
        steps = np.maximum(np.round(gaps * height), 2).astype(int)
        slots = np.maximum(widths, round(0.55 * float(np.median(widths))))
        total = int(slots.sum() + steps.sum())
        if total <= room or height <= 8:
            return height, widths, steps
        if condense > MIN_CONDENSE:
            condense = max(MIN_CONDENSE, condense * min(0.97, room / total))
        else:
            height = int(height * min(0.97, room / total))


def _char_gaps(rng: np.random.Generator, text: str, group_gap: bool) -> np.ndarray:
    """Gaps between consecutive characters, as fractions of the character height.

    Groups of letters and digits may be set apart, but only groups of two or more, so that
    ``ABC1D23`` stays evenly spaced.
    """
    gaps = np.full(max(len(text) - 1, 0), rng.uniform(0.12, 0.2))
    if group_gap:
        runs = [len(run) for run in re.findall(r"[A-Z]+|[0-9]+", text)]
        ends = np.cumsum(runs)[:-1] - 1
        between_long_runs = [i for k, i in enumerate(ends) if min(runs[k], runs[k + 1]) >= 2]
        gaps[between_long_runs] += rng.uniform(0.25, 0.45)
    return gaps


def _glyph_crop(text: str, size: int, stroke: int) -> np.ndarray:
    """Float32 coverage (0..1) of ``text`` in the bundled font, cropped tight to the ink."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    image = Image.new("L", (right - left + 2, bottom - top + 2))
    ImageDraw.Draw(image).text(
        (1 - left, 1 - top), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255
    )
    alpha = np.asarray(image, dtype=np.float32) / 255.0
    rows = np.flatnonzero(alpha.max(axis=1) > 0.02)
    cols = np.flatnonzero(alpha.max(axis=0) > 0.02)
    return alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _text_alpha(text: str, height: int, stroke: int) -> np.ndarray:
    """Float32 coverage of ``text`` scaled to ``height`` rows of ink, natural width."""
    crop = _glyph_crop(text, max(6, round(height / FONT_CAP_RATIO)), stroke)
    return _resize(crop, max(1, round(crop.shape[1] * height / crop.shape[0])), height)


def _resize(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    """``alpha`` resized to (height, width), area-averaged when shrinking."""
    shrinking = width * height < alpha.shape[0] * alpha.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(alpha, (width, height), interpolation=interpolation)


def _single_blob(alpha: np.ndarray) -> np.ndarray:
    """``alpha`` with every ink component but the largest erased, so a glyph is one blob."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((alpha >= 0.5).astype(np.uint8))
    if count <= 2:
        return alpha
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    stray = (labels > 0) & (labels != largest)
    stray = cv2.dilate(stray.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return np.where(stray & (labels != largest), 0.0, alpha).astype(np.float32)


def _ink_box(alpha: np.ndarray, x: int, y: int) -> Box:
    """(x, y, w, h) of the pixels at least half covered by ink, offset by (x, y)."""
    rows = np.flatnonzero((alpha >= 0.5).any(axis=1))
    cols = np.flatnonzero((alpha >= 0.5).any(axis=0))
    return (x + int(cols[0]), y + int(rows[0]), int(cols[-1] - cols[0] + 1),
            int(rows[-1] - rows[0] + 1))  # fmt: skip


def _blend(canvas: np.ndarray, alpha: np.ndarray, x: int, y: int, color: Color) -> None:
    """Paint ``color`` into ``canvas`` with coverage ``alpha`` at (x, y), clipped to the canvas."""
    h, w = canvas.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + alpha.shape[1], w), min(y + alpha.shape[0], h)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    patch = canvas[y0:y1, x0:x1]
    patch += (np.asarray(color, np.float32) - patch) * a


# ---------------------------------------------------------------------------------------------
# Scenes


def synth_scene(
    rng: np.random.Generator, region: RegionConfig, size: tuple[int, int] | None = None
) -> SynthScene:
    """A BGR scene of a car front carrying one plate of the region, with its box and quad.

    ``size`` is (width, height); the default is the region's ``synth.scene_size``. The plate is
    warped in with a mild perspective and rotation, then the whole scene is blurred, relit and
    made noisy.
    """
    width, height = size if size is not None else region.synth.scene_size
    plate = synth_plate(rng, region)
    quad = _plate_quad(rng, region, plate, width, height)
    scene = _paint_backdrop(rng, width, height)
    _paint_clutter(rng, scene, quad)
    _paint_car(rng, scene, quad)
    _paste_plate(scene, plate.image, quad)
    scene = _degrade(rng, scene, MAX_BLUR_SIGMA, noise_max=8.0, shading_max=8.0)
    corners = tuple((float(x), float(y)) for x, y in quad)
    return SynthScene(scene, ((_quad_box(quad, width, height), plate.text),), (corners,))


def synth_scenes(count: int, seed: int, region: RegionConfig) -> Iterator[tuple[str, SynthScene]]:
    """(name, scene) pairs; item i depends only on (seed, i), not on ``count``."""
    for i in range(count):
        rng = np.random.default_rng((seed, i))
        yield f"{region.name}_{seed}_{i:05d}", synth_scene(rng, region)


def synth_crops(count: int, seed: int, region: RegionConfig) -> Iterator[tuple[str, SynthPlate]]:
    """(name, plate) pairs of flat plates with mild blur, lighting and noise; item i from (seed, i).

    Crop i shows the same plate as scene i of ``synth_scenes`` with the same seed.
    """
    for i in range(count):
        rng = np.random.default_rng((seed, i))
        plate = synth_plate(rng, region)
        image = _degrade(rng, plate.image, blur_max=0.8, noise_max=5.0, shading_max=0.0)
        yield f"{region.name}_{seed}_{i:05d}", SynthPlate(image, plate.text, plate.char_boxes)


def training_crop(rng: np.random.Generator, region: RegionConfig) -> SynthPlate:
    """A grey plate crop as a camera would give it, for training the character classifier: a
    random plate of the region seen in mild perspective at a random size (character heights
    of small scene plates to large crops), rendered to grey with random channel weights
    (colour or infrared), blurred (defocus or motion), relit, noisy and JPEG-compressed.
    ``char_boxes`` are those of the flat plate, before the warp."""
    plate = synth_plate(rng, region)
    flat_h, flat_w = plate.image.shape[:2]
    height = int(
        round(np.exp(rng.uniform(np.log(TRAIN_CROP_HEIGHT[0]), np.log(TRAIN_CROP_HEIGHT[1]))))
    )
    width = int(round(height * flat_w / flat_h * rng.uniform(0.9, 1.1)))
    reach = CORNER_JITTER * height
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    corners += rng.uniform(-reach, reach, (4, 2)).astype(np.float32)
    source = np.array([[0, 0], [flat_w, 0], [flat_w, flat_h], [0, flat_h]], np.float32)
    small = cv2.resize(plate.image, (width, height), interpolation=cv2.INTER_AREA)
    scale = np.array([width / flat_w, height / flat_h], np.float32)
    matrix = cv2.getPerspectiveTransform(source * scale, corners)
    warped = cv2.warpPerspective(small, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    weights = rng.dirichlet((2.0, 2.0, 2.0))
    gray = np.clip(warped.astype(np.float32) @ weights.astype(np.float32), 0, 255).astype(np.uint8)
    if rng.random() < MOTION_BLUR_SHARE:
        gray = _motion_blur(rng, gray, rng.uniform(1.0, MAX_MOTION_PX * height / 100))
    gray = _degrade(
        rng, gray, blur_max=MAX_BLUR_SIGMA * height / 100, noise_max=8.0, shading_max=6.0
    )
    quality = int(rng.integers(*TRAIN_JPEG_QUALITY))
    ok, encoded = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])
    gray = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE) if ok else gray
    return SynthPlate(gray, plate.text, plate.char_boxes)


def training_crops(count: int, seed: int, region: RegionConfig) -> Iterator[SynthPlate]:
    """``count`` training crops (``training_crop``); crop i depends only on (seed, i)."""
    for i in range(count):
        yield training_crop(np.random.default_rng((seed, i, TRAINING_STREAM)), region)


def _motion_blur(rng: np.random.Generator, gray: np.ndarray, length: float) -> np.ndarray:
    """``gray`` smeared along a random direction over ``length`` pixels."""
    size = max(3, int(np.ceil(length)) | 1)
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, :] = 1.0
    turn = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, turn, (size, size))
    return cv2.filter2D(gray, -1, kernel / max(kernel.sum(), 1e-6))


def _plate_quad(
    rng: np.random.Generator, region: RegionConfig, plate: SynthPlate, width: int, height: int
) -> np.ndarray:
    """The plate's 4 corners in the scene (float, clockwise from top-left), inside the image."""
    plate_h, plate_w = plate.image.shape[:2]
    low, high = region.synth.plate_width_fraction
    char_h = min(b[3] for b in plate.char_boxes)
    pw = max(width * rng.uniform(low, high), MIN_SCENE_CHAR_PX * plate_w / char_h)
    pw = min(pw, 0.9 * width, 0.8 * height * plate_w / plate_h)
    ph = pw * plate_h / plate_w
    corners = np.array([[-pw, -ph], [pw, -ph], [pw, ph], [-pw, ph]]) / 2
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = corners @ rotation.T + rng.uniform(-1, 1, (4, 2)) * CORNER_JITTER * ph
    low_xy, high_xy = corners.min(axis=0), corners.max(axis=0)
    cx = _uniform_within(rng, (0.3 * width, 0.7 * width), (2 - low_xy[0], width - 2 - high_xy[0]))
    cy = _uniform_within(
        rng, (0.5 * height, 0.82 * height), (2 - low_xy[1], height - 2 - high_xy[1])
    )
    return corners + (cx, cy)


def _uniform_within(
    rng: np.random.Generator, wanted: tuple[float, float], allowed: tuple[float, float]
) -> float:
    """A uniform draw from ``wanted`` narrowed to ``allowed`` (the middle if that is empty)."""
    low, high = max(wanted[0], allowed[0]), min(wanted[1], allowed[1])
    if low >= high:
        low, high = allowed if allowed[0] < allowed[1] else (sum(allowed) / 2,) * 2
    return float(rng.uniform(low, high)) if low < high else low


def _quad_box(quad: np.ndarray, width: int, height: int) -> Box:
    """(x, y, w, h) of the pixels the quad touches, clipped to the image."""
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(x1), width), min(int(y1), height)
    return (x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))


def _paint_backdrop(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A uint8 street backdrop: sky gradient above the horizon, road gradient below."""
    horizon = int(height * rng.uniform(0.25, 0.5))
    sky_top = np.array(_jitter(rng, _pick(rng, ((200, 150, 90), (190, 190, 190))), 25))
    sky_bottom = np.array(_jitter(rng, (235, 225, 210), 20))
    road_top = np.array(_jitter(rng, (rng.uniform(80, 150),) * 3, 8))
    road_bottom = road_top * rng.uniform(0.6, 0.95)
    sky = np.linspace(sky_top, sky_bottom, horizon)
    road = np.linspace(road_top, road_bottom, height - horizon)
    column = np.clip(np.concatenate([sky, road]), 0, 255).astype(np.uint8)
    return cv2.resize(column[:, None, :], (width, height), interpolation=cv2.INTER_NEAREST)


def _paint_clutter(rng: np.random.Generator, scene: np.ndarray, quad: np.ndarray) -> None:
    """Paint distractors behind the car: buildings with windows, poles, lines and a sign."""
    height, width = scene.shape[:2]
    for _ in range(int(rng.integers(1, 5))):
        _draw_building(rng, scene)
    for _ in range(int(rng.integers(2, 8))):
        start = rng.uniform(0, 1, 2) * (width, height)
        end = start + rng.normal(0, 0.4, 2) * (width, height)
        color = _jitter(rng, (rng.uniform(30, 230),) * 3, 20)
        thickness = int(rng.integers(1, 7))
        cv2.line(scene, _int_point(start), _int_point(end), color, thickness, cv2.LINE_AA)
    if rng.random() < 0.4:
        _draw_sign(rng, scene, quad)


def _draw_building(rng: np.random.Generator, scene: np.ndarray) -> None:
    """Paint a building block, often with a grid of windows (regular dark blobs)."""
    height, width = scene.shape[:2]
    bw, bh = width * rng.uniform(0.1, 0.35), height * rng.uniform(0.15, 0.5)
    x0, y0 = rng.uniform(-0.1, 0.95) * width, height * rng.uniform(0.0, 0.35)
    color = _jitter(rng, (rng.uniform(60, 210),) * 3, 30)
    cv2.rectangle(scene, _int_point((x0, y0)), _int_point((x0 + bw, y0 + bh)), color, -1)
    if rng.random() < 0.6:
        cols, rows = int(rng.integers(2, 8)), int(rng.integers(2, 6))
        window = _jitter(rng, (rng.uniform(20, 90),) * 3, 20)
        for r in range(rows):
            for c in range(cols):
                wx, wy = x0 + bw * (c + 0.25) / cols, y0 + bh * (r + 0.25) / rows
                corner = (wx + 0.5 * bw / cols, wy + 0.5 * bh / rows)
                cv2.rectangle(scene, _int_point((wx, wy)), _int_point(corner), window, -1)


def _draw_sign(rng: np.random.Generator, scene: np.ndarray, quad: np.ndarray) -> None:
    """Paint a small street sign with a word on it, away from the plate."""
    height, width = scene.shape[:2]
    sw, sh = width * rng.uniform(0.08, 0.16), height * rng.uniform(0.05, 0.09)
    x = rng.uniform(0, width - sw)
    y = rng.uniform(0, max(1.0, quad[:, 1].min() - 3 * sh))
    light = rng.random() < 0.5
    ink = (30, 30, 30) if light else (240, 240, 240)
    x0, y0, x1, y1 = round(x), round(y), round(x + sw), round(y + sh)
    canvas = np.empty((y1 - y0, x1 - x0, 3), np.float32)
    canvas[:] = _jitter(rng, (235, 235, 235) if light else (60, 120, 30), 20)
    word = _pick(rng, SIGN_WORDS)
    _draw_label(canvas, word, 0.5 * sh, ((x1 - x0) / 2, 0.25 * sh), ink, 0.85 * sw)
    scene[y0:y1, x0:x1] = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)[
        : height - y0, : width - x0
    ]


def _paint_car(rng: np.random.Generator, scene: np.ndarray, quad: np.ndarray) -> None:
    """Paint the front of a car around the plate: body, glass, grille, lights, bumper, wheels."""
    plate_w = float(np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    plate_h = float(np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    px, py = quad.mean(axis=0)
    height, width = scene.shape[:2]
    car_w = float(np.clip(plate_w / rng.uniform(0.17, 0.3), 0.45 * width, 1.3 * width))
    car_h = car_w * rng.uniform(0.55, 0.75)
    x0 = px - car_w * rng.uniform(0.45, 0.55)
    x1 = x0 + car_w
    bottom = py + max(car_h * rng.uniform(0.1, 0.2), 1.2 * plate_h)
    top = bottom - car_h
    body = _jitter(rng, _pick(rng, CAR_COLORS), 15)
    shade = tuple(c * 0.55 for c in body)
    tire = _jitter(rng, (25, 25, 25), 8)
    cv2.ellipse(scene, _int_point((px, bottom + 0.02 * car_h)), _int_point((0.6 * car_w,
                0.06 * car_h)), 0, 0, 360, (30, 30, 30), -1, cv2.LINE_AA)  # fmt: skip
    for wx in (x0 + 0.16 * car_w, x1 - 0.16 * car_w):
        cv2.circle(scene, _int_point((wx, bottom - 0.02 * car_h)), round(0.1 * car_w), tire, -1)
    cabin = np.array(
        [(x0 + 0.16 * car_w, top), (x1 - 0.16 * car_w, top),
         (x1 - 0.04 * car_w, top + 0.42 * car_h), (x0 + 0.04 * car_w, top + 0.42 * car_h)]
    )  # fmt: skip
    _fill_poly(scene, cabin, body)
    inset = np.array([(0.02, 0.05), (-0.02, 0.05), (-0.04, -0.02), (0.04, -0.02)])
    glass = cabin + inset * (car_w, car_h)
    _fill_poly(scene, glass, _jitter(rng, (70, 60, 50), 20))
    _rounded_rect(scene, (x0, top + 0.38 * car_h, x1, bottom), 0.07 * car_w, body)
    grille_top, grille_bottom = py - plate_h * rng.uniform(2.0, 2.6), py - plate_h * 0.9
    half = car_w * rng.uniform(0.18, 0.28)
    _draw_grille(rng, scene, (px - half, grille_top, px + half, grille_bottom))
    lamp = _jitter(rng, (225, 230, 235), 20)
    lamp_y = (grille_top + grille_bottom) / 2
    for lx in (x0 + 0.14 * car_w, x1 - 0.14 * car_w):
        axes = _int_point((0.09 * car_w, 0.045 * car_h))
        cv2.ellipse(scene, _int_point((lx, lamp_y)), axes, 0, 0, 360, lamp, -1, cv2.LINE_AA)
        cv2.ellipse(scene, _int_point((lx, lamp_y)), axes, 0, 0, 360, shade, 2, cv2.LINE_AA)
    bumper = (x0 + 0.02 * car_w, py - 0.75 * plate_h, x1 - 0.02 * car_w, py + 0.95 * plate_h)
    bumper_color = shade if rng.random() < 0.6 else _jitter(rng, (40, 40, 40), 10)
    _rounded_rect(scene, bumper, 0.3 * plate_h, bumper_color)
    if rng.random() < 0.5:
        recess = quad.mean(axis=0) + (quad - quad.mean(axis=0)) * (1.12, 1.3)
        _fill_poly(scene, recess, _jitter(rng, (35, 35, 35), 10))


def _draw_grille(
    rng: np.random.Generator, scene: np.ndarray, box: tuple[float, float, float, float]
) -> None:
    """Paint a dark grille with horizontal slats (strong horizontal gradients, like text)."""
    x0, y0, x1, y1 = box
    cv2.rectangle(scene, _int_point((x0, y0)), _int_point((x1, y1)), _jitter(rng, (35,) * 3, 10),
                  -1)  # fmt: skip
    slat = _jitter(rng, (rng.uniform(90, 180),) * 3, 15)
    step = max(4.0, (y1 - y0) / rng.uniform(3, 7))
    for y in np.arange(y0 + step / 2, y1, step):
        cv2.line(scene, _int_point((x0, y)), _int_point((x1, y)), slat, 2, cv2.LINE_AA)


def _rounded_rect(
    scene: np.ndarray, box: tuple[float, float, float, float], radius: float, color: Color
) -> None:
    """Fill a rectangle with rounded corners."""
    x0, y0, x1, y1 = box
    r = max(1.0, min(radius, (x1 - x0) / 2, (y1 - y0) / 2))
    cv2.rectangle(scene, _int_point((x0 + r, y0)), _int_point((x1 - r, y1)), color, -1)
    cv2.rectangle(scene, _int_point((x0, y0 + r)), _int_point((x1, y1 - r)), color, -1)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x1 - r, y1 - r), (x0 + r, y1 - r)):
        cv2.circle(scene, _int_point((cx, cy)), round(r), color, -1, cv2.LINE_AA)


def _fill_poly(scene: np.ndarray, points: np.ndarray, color: Color) -> None:
    """Fill a convex polygon given in float pixel coordinates, anti-aliased."""
    fixed = np.round(np.asarray(points) * 16).astype(np.int32)
    cv2.fillConvexPoly(scene, fixed, color, cv2.LINE_AA, 4)


def _paste_plate(scene: np.ndarray, plate: np.ndarray, quad: np.ndarray) -> None:
    """Warp ``plate`` onto ``quad`` of ``scene`` (in place), anti-aliased at its edges."""
    height, width = scene.shape[:2]
    x0, y0, w, h = _quad_box(quad, width, height)
    if w == 0 or h == 0:
        return
    edge_w = (np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    scale = min(1.0, edge_w / plate.shape[1])
    small_w = max(2, round(plate.shape[1] * scale))
    small_h = max(2, round(plate.shape[0] * scale))
    small = cv2.resize(plate, (small_w, small_h), interpolation=cv2.INTER_AREA)
    source = np.array([[0, 0], [small_w, 0], [small_w, small_h], [0, small_h]], np.float32)
    target = (quad - (x0, y0)).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(source - 0.5, target - 0.5)
    warped = cv2.warpPerspective(small, matrix, (w, h), flags=cv2.INTER_LINEAR)
    coverage = cv2.warpPerspective(
        np.ones((small_h, small_w), np.float32), matrix, (w, h), flags=cv2.INTER_LINEAR
    )[..., None]
    roi = scene[y0 : y0 + h, x0 : x0 + w]
    mixed = roi * (1 - coverage) + warped * coverage
    roi[:] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def _degrade(
    rng: np.random.Generator,
    image: np.ndarray,
    blur_max: float,
    noise_max: float,
    shading_max: float,
) -> np.ndarray:
    """``image`` blurred, relit (contrast, brightness, gamma, soft shading) and made noisy."""
    sigma = rng.uniform(0.0, blur_max)
    if sigma > 0.15:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    contrast, brightness = rng.uniform(0.7, 1.15), rng.uniform(-35, 30)
    gamma = rng.uniform(0.8, 1.25)
    levels = 255.0 * (np.arange(256) / 255.0) ** gamma * contrast + brightness
    image = cv2.LUT(image, np.clip(levels + 0.5, 0, 255).astype(np.uint8))
    height, width = image.shape[:2]
    noise = _gaussian_noise(rng, (height, width), rng.uniform(1.0, noise_max))
    if shading_max > 0:
        coarse = rng.normal(0, rng.uniform(0, shading_max), (height // 128 + 2, width // 128 + 2))
        noise += cv2.resize(np.round(coarse).astype(np.int16), (width, height))
    if image.ndim == 2:
        return cv2.add(image, noise, dtype=cv2.CV_8U)
    return cv2.add(image, cv2.merge([noise] * image.shape[2]), dtype=cv2.CV_8U)


def _gaussian_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """int16 Gaussian noise of ``sigma``, from 256 quantiles indexed by random bytes (fast)."""
    normal = NormalDist(0.0, sigma)
    table = np.array([round(normal.inv_cdf((k + 0.5) / 256)) for k in range(256)], np.int16)
    index = np.frombuffer(rng.bytes(shape[0] * shape[1]), np.uint8).reshape(shape)
    return table[index]


# ---------------------------------------------------------------------------------------------
# Small helpers


def _pick(rng: np.random.Generator, options: tuple):
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def _jitter(rng: np.random.Generator, color: Color, amount: float) -> Color:
    """``color`` with each channel moved by up to ``amount``, kept in 0..255."""
    moved = np.clip(np.asarray(color, float) + rng.uniform(-amount, amount, 3), 0, 255)
    return (float(moved[0]), float(moved[1]), float(moved[2]))


def _int_point(point) -> tuple[int, int]:
    """A point (or size) rounded to whole pixels, as OpenCV drawing wants."""
    return (round(float(point[0])), round(float(point[1])))
