"""Plate candidates in a scene, by morphology at a few scales.

Blackhat (closing minus image) keeps dark marks narrower than its kernel, such as characters
on a light plate; tophat does the same for light characters on dark plates. Plates are rows of
such marks with strong horizontal gradients, so the horizontal gradient, blurred and closed
with a wide kernel, joins a plate's characters into one blob. Blobs whose shape and size fit
the region become candidates. Scales follow the plate sizes the region expects, so the
kernels always see characters of about the same size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from anpr_core.config import RegionConfig
from anpr_core.records import Box, Candidate

WORK_PLATE_HEIGHT = 30  # plate height in pixels at which the morphology kernels are tuned
MIN_PLATE_HEIGHT = 10  # smallest plate, in source pixels, worth a candidate
# The character blob grown to the quad that is read: a margin that keeps edge characters whole.
# The candidate's box (the plate itself) is the blob ungrown: grown by these margins, boxes were
# 1.1-1.25x too wide and 1.2-1.35x too high (median, best candidate vs labeled plate) in the
# US, EU and BR scenes alike.
EXPAND_X, EXPAND_Y = 0.08, 0.15
# How scales are laid out (``localize_plates``): "scales", one resize of the scene per expected
# plate height; "pyramid", exact halvings with the first level's mask at half resolution.
SCHEMES = ("scales", "pyramid")
# Gradient (|Sobel| of the hat) under which a pyramid mask holds no text. The masks' Otsu
# level adapts to any image, so in a flat or noisy one it falls at 1-2 and cuts noise into
# plate-sized blobs; in every development scene (US, EU, BR) it is 25 or more.
MIN_TEXT_GRADIENT = 8.0

# Scales (``plate_scales``), by the plate heights the region expects in the scene.
SCALE_STEP = 1.6  # ratio of one scale's expected plate height to the next's
MAX_SCALES = 5  # most scales a scene is searched at
# Each scale is for plates this much taller than the low end of its step, so that plates over the
# step come out about WORK_PLATE_HEIGHT high (24 to 38 px at the default step).
SCALE_SHIFT = 1.25
SMALL_SCENE_WIDTH = 1000  # scene width, in pixels, under which plates may be upsampled
MAX_UPSAMPLE = 1.5  # most a small scene is upsampled, for its smallest plates
PYRAMID_REACH = 1.2  # the pyramid halves until its last level is within this of the last scale

# Text masks (``text_blobs``): kernels as (width, height) in plate heights at working scale.
HAT_WIDTH, HAT_HEIGHT = 0.5, 0.2  # the hat's: it keeps marks narrower than it, such as characters
# The gradient's Gaussian blur, in pixels; less on a halved mask, which the halving blurred.
GRADIENT_BLUR, HALVED_GRADIENT_BLUR = 5, 3
GRADIENT_CLOSE_WIDTH, GRADIENT_CLOSE_HEIGHT = 0.8, 0.15  # wide and low: joins a row's marks
MASK_CLOSE_WIDTH, MASK_CLOSE_HEIGHT = 0.5, 0.3  # after the mask's opening, joins a plate's marks

# Blobs that fit the region (``plate_blobs``) and the candidates kept of them.
MIN_BLOB_HEIGHT = 4  # least height of a candidate's blob, in pixels at working scale
BLOB_HEIGHT = 0.55  # blob height that fits size best, in WORK_PLATE_HEIGHTs (less fit either way)
FIT_FLOOR = 0.5  # least factor a poor size or aspect fit scales a blob's score by: fill weighs most
MAX_OVERLAP = 0.5  # IoU over which a candidate is the same plate as a better one, and dropped
MAX_CANDIDATES = 10  # candidates ``localize_plates`` returns unless told (its callers here tell it)


def plate_scales(
    shape: tuple[int, int],
    region: RegionConfig,
    step: float = SCALE_STEP,
    max_scales: int = MAX_SCALES,
    halvings: bool = False,
) -> list[float]:
    """Resize factors that bring the region's expected plate heights to WORK_PLATE_HEIGHT.

    With ``halvings``, the same range is covered by a pyramid instead: the first scale, then
    exact halves down to the last (within 1.2x). Each level is then resized from the one
    before, as a 2x2 mean that costs little, and holds fewer pixels: on US scenes that
    localizes 1.5x faster, for about 2% of the reads (README, "Speed").
    """
    width = shape[1]
    lo, hi = region.plate_width_fraction
    smallest = max(MIN_PLATE_HEIGHT, lo * width / region.plate_aspect)
    largest = max(smallest, hi * width / region.plate_aspect)
    scales = []
    # upsampling a small image is cheap; a large one is not
    cap = MAX_UPSAMPLE if width < SMALL_SCENE_WIDTH else 1.0
    height = smallest * SCALE_SHIFT
    while height <= largest * SCALE_SHIFT and len(scales) < max_scales:
        scales.append(min(cap, WORK_PLATE_HEIGHT / height))
        height *= step
    scales = sorted(set(scales), reverse=True) or [1.0]
    if not halvings:
        return scales
    levels = [scales[0]]
    while levels[-1] > scales[-1] * PYRAMID_REACH:
        levels.append(levels[-1] / 2)
    return levels


def _kernel(width: float, height: float) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_RECT, (max(1, int(width)), max(1, int(height))))


def _odd(size: float) -> int:
    """``int(size)``, made odd (a centred rect kernel then composes exactly)."""
    n = max(1, int(size))
    return n if n % 2 else n + 1


def text_blobs(
    gray: np.ndarray, polarity: str, halve: bool = False, min_gradient: float = 0.0
) -> np.ndarray:
    """Binary mask of rows of character-like marks in a grey image at working scale.

    With ``halve``, the mask is made at half the image's resolution: the marks and their
    gradient are found at full resolution, and only joining them into rows (blur, closing,
    threshold, opening), which needs no fine detail, runs on a quarter of the pixels.
    Gradients under ``min_gradient`` are never text, whatever Otsu's level.
    """
    ph = WORK_PLATE_HEIGHT
    op = cv2.MORPH_BLACKHAT if polarity == "dark_on_light" else cv2.MORPH_TOPHAT
    hat = cv2.morphologyEx(gray, op, _kernel(ph * HAT_WIDTH, ph * HAT_HEIGHT))
    # 16-bit holds a 3x3 Sobel of 8-bit pixels exactly, in half the memory traffic of float
    sobel = cv2.Sobel(hat, cv2.CV_16S, 1, 0, ksize=3)
    low, high, _, _ = cv2.minMaxLoc(sobel)
    peak = max(-low, high)
    if peak <= 0 or peak < min_gradient:  # no text anywhere
        empty = np.zeros_like(gray)
        return (
            cv2.resize(empty, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            if halve
            else empty
        )
    # |sobel| * 255 / peak, truncated to uint8 (the -0.5 turns rounding into truncation)
    grad = cv2.convertScaleAbs(np.abs(sobel), alpha=255.0 / peak, beta=-0.5)
    if halve:  # an area resize by exactly one half is a 2x2 mean, itself a blur
        grad = cv2.resize(grad, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        ph /= 2
    blur = HALVED_GRADIENT_BLUR if halve else GRADIENT_BLUR
    grad = cv2.GaussianBlur(grad, (blur, blur), 0)
    grad = cv2.morphologyEx(
        grad, cv2.MORPH_CLOSE, _kernel(ph * GRADIENT_CLOSE_WIDTH, ph * GRADIENT_CLOSE_HEIGHT)
    )
    level, mask = cv2.threshold(grad, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    floor = min_gradient * 255.0 / peak
    if level < floor:
        _, mask = cv2.threshold(grad, floor, 255, cv2.THRESH_BINARY)
    return open_then_close(mask, (_odd(ph * MASK_CLOSE_WIDTH), _odd(ph * MASK_CLOSE_HEIGHT)))


def open_then_close(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``mask`` opened by a 3x3 square (drops specks), then closed by an odd-sized (width,
    height) rect (joins a plate's marks), in three passes instead of four: the two dilations
    in the middle make one by a rect 2 pixels larger, exactly."""
    width, height = size
    mask = cv2.erode(mask, _kernel(3, 3))
    mask = cv2.dilate(mask, _kernel(width + 2, height + 2))
    return cv2.erode(mask, _kernel(width, height))


def plate_rect(
    rect, scale: float, plate_aspect: float, expand: tuple[float, float] = (EXPAND_X, EXPAND_Y)
) -> tuple:
    """The plate around a character blob (a rotated rect at working scale), as a rotated rect
    in source pixels.

    Characters span most of a plate's width, so the blob's width sets the plate's width and
    the region's plate aspect sets its height (never less than the blob's own height).
    """
    (cx, cy), (w, h), angle = rect
    if w < h:  # make the long side the width
        w, h, angle = h, w, angle + 90
    if angle > 45:
        angle -= 180
    elif angle < -45:
        angle += 180
    width = w * (1 + 2 * expand[0])
    height = max(h * (1 + 2 * expand[1]), width / plate_aspect)
    return ((cx / scale, cy / scale), (width / scale, height / scale), angle)


def plate_quad(
    rect, scale: float, plate_aspect: float, expand: tuple[float, float] = (EXPAND_X, EXPAND_Y)
) -> np.ndarray:
    """The corners of ``plate_rect``, ordered clockwise from top-left."""
    return order_quad(cv2.boxPoints(plate_rect(rect, scale, plate_aspect, expand)))


def order_quad(points: np.ndarray) -> np.ndarray:
    """Four points ordered clockwise from top-left."""
    pts = np.asarray(points, np.float32).reshape(4, 2)
    s = pts.sum(axis=1)
    d = pts[:, 1] - pts[:, 0]
    return np.array([pts[s.argmin()], pts[d.argmin()], pts[s.argmax()], pts[d.argmax()]])


def quad_box(quad: np.ndarray, shape: tuple[int, int]) -> Box:
    """Axis-aligned box of a quadrilateral, clipped to an image of ``shape``."""
    xs, ys = zip(*np.asarray(quad, np.float64).tolist(), strict=True)
    x0, y0 = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
    x1, y1 = min(shape[1], math.ceil(max(xs))), min(shape[0], math.ceil(max(ys)))
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


@dataclass(frozen=True)
class Blob:
    """A character blob that fits the region: the plate's box in source pixels, its score,
    and the rotated rect (at working ``scale``) the candidate's quad is drawn from."""

    box: Box
    score: float
    rect: tuple
    scale: float
    polarity: str

    def candidate(self, plate_aspect: float) -> Candidate:
        """The candidate of this blob: its box, and its quad grown by the read margins."""
        quad = plate_quad(self.rect, self.scale, plate_aspect)
        quad_t = tuple((float(x), float(y)) for x, y in quad)
        return Candidate(self.box, quad_t, self.score, self.polarity)


def plate_blobs(
    mask: np.ndarray,
    scale: float,
    shape: tuple[int, int],
    region: RegionConfig,
    polarity: str,
    unit: float = 1.0,
) -> list[Blob]:
    """The blobs of ``mask`` (at ``scale`` of the scene) whose shape and size fit the region;
    ``unit`` is the mask's pixels per pixel at working scale (0.5 for a halved mask).

    Most blobs are specks: their rotated rects are sized up all at once, and only those that
    fit are scored.
    """
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    rects = [cv2.minAreaRect(contour) for contour in contours]
    sides = np.array([rect[1] for rect in rects], np.float64)
    w, h = sides.max(axis=1), sides.min(axis=1)
    lo_a, hi_a = region.aspect_range
    lo_w, hi_w = region.plate_width_fraction
    plate_w = w * (1 + 2 * EXPAND_X) / scale
    aspect = plate_w / np.maximum(h * (1 + 2 * EXPAND_Y) / scale, 1e-9)
    fits = (
        (h >= MIN_BLOB_HEIGHT * unit)
        & (lo_a <= aspect)
        & (aspect <= hi_a)
        & (lo_w * shape[1] <= plate_w)
        & (plate_w <= hi_w * shape[1])
        & (plate_w / region.plate_aspect >= MIN_PLATE_HEIGHT)
    )
    found = []
    for i in np.flatnonzero(fits):
        fill = cv2.contourArea(contours[i]) / max(1.0, w[i] * h[i])
        size_fit = math.exp(-abs(math.log(h[i] / (WORK_PLATE_HEIGHT * BLOB_HEIGHT * unit))))
        aspect_fit = math.exp(-abs(math.log(aspect[i] / region.plate_aspect)))
        size_factor = FIT_FLOOR + (1 - FIT_FLOOR) * size_fit
        aspect_factor = FIT_FLOOR + (1 - FIT_FLOOR) * aspect_fit
        score = fill * size_factor * aspect_factor
        # the box of the corners as they come: ordering them repeats one at exactly 45 degrees
        corners = cv2.boxPoints(plate_rect(rects[i], scale, region.plate_aspect, (0.0, 0.0)))
        found.append(Blob(quad_box(corners, shape), float(score), rects[i], scale, polarity))
    return found


def best_apart(boxes: list[Box], scores: list[float], max_iou: float, limit: int) -> list[int]:
    """Indices of at most ``limit`` boxes, best score first, skipping any box that overlaps a
    better kept one by more than ``max_iou`` (greedy non-maximum suppression)."""
    order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
    if not order or limit <= 0:
        return []
    b = np.array([boxes[i] for i in order], np.float64)
    x0, y0 = b[:, 0], b[:, 1]
    x1, y1 = x0 + b[:, 2], y0 + b[:, 3]
    area = b[:, 2] * b[:, 3]
    iw = np.clip(np.minimum(x1[:, None], x1) - np.maximum(x0[:, None], x0), 0, None)
    ih = np.clip(np.minimum(y1[:, None], y1) - np.maximum(y0[:, None], y0), 0, None)
    inter = iw * ih
    overlaps = (inter / np.maximum(area[:, None] + area - inter, 1e-9)) > max_iou
    kept: list[int] = []
    for i in range(len(order)):
        if not overlaps[kept, i].any():
            kept.append(i)
            if len(kept) == limit:
                break
    return [order[i] for i in kept]


def suppress(candidates: list[Candidate], max_iou: float = MAX_OVERLAP) -> list[Candidate]:
    """Candidates best first, dropping any that overlaps a better one by more than max_iou."""
    kept = best_apart(
        [c.box for c in candidates], [c.score for c in candidates], max_iou, len(candidates)
    )
    return [candidates[i] for i in kept]


def localize_plates(
    gray: np.ndarray,
    region: RegionConfig,
    max_candidates: int = MAX_CANDIDATES,
    scheme: str = "pyramid",
) -> list[Candidate]:
    """Plate candidates in a grey scene, best first, at most ``max_candidates``.

    ``scheme`` (``SCHEMES``) "pyramid": levels of exact halvings (``plate_scales``), each
    resized from the one before, and the first (finest, most pixels) level's mask made at
    half resolution (``text_blobs``); "scales": each scale resized from the scene, every mask
    at its scale's resolution. On US scenes the pyramid localizes 2.4x faster and reads about
    4% fewer plates at 3 one-pixel shifts (README, "Speed").
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown localization scheme {scheme!r}: one of {', '.join(SCHEMES)}")
    halvings = scheme == "pyramid"
    floor = MIN_TEXT_GRADIENT if halvings else 0.0
    found: list[Blob] = []
    source, source_scale = gray, 1.0
    for level, scale in enumerate(plate_scales(gray.shape, region, halvings=halvings)):
        small = gray
        if scale != 1.0:
            factor = scale / source_scale
            interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            small = cv2.resize(source, None, fx=factor, fy=factor, interpolation=interp)
        if halvings:
            source, source_scale = small, scale
        unit = 0.5 if halvings and level == 0 else 1.0
        for polarity in region.polarity:
            mask = text_blobs(small, polarity, halve=unit < 1, min_gradient=floor)
            found.extend(plate_blobs(mask, scale * unit, gray.shape, region, polarity, unit))
    kept = best_apart([b.box for b in found], [b.score for b in found], MAX_OVERLAP, max_candidates)
    return [found[i].candidate(region.plate_aspect) for i in kept]
