"""Rectify a plate candidate and cut out its characters, left to right.

Adaptive threshold, connected components, then pruning by what characters of the region look
like: height relative to the plate, aspect ratio, fill, and membership in the one row of
similar-sized, baseline-aligned components that the plate's characters form. Borders, bolts,
state names, slogans and stickers fail one of those tests.
"""

from __future__ import annotations

import math
from dataclasses import replace
from statistics import median

import cv2
import numpy as np

from anpr_core.config import RegionConfig
from anpr_core.records import Box, CharImage, Quad

PLATE_HEIGHT = 80  # rows of a rectified plate: enough for 3-4 px strokes, small enough to be fast
MIN_PLATE_WIDTH = 8  # least columns of a rectified plate, however thin its quad
PLATE_MARGIN = 0.08  # a plate's margin around its characters, as a fraction of their span
# Least height of a plate redrawn around characters, in heights of their row: keeps a tenth of
# the row's height above and below it whatever the region's plate aspect.
ROW_HEIGHT_ROOM = 1.2

# Binarization: the contrast stretch, then the pipeline's fine local threshold (the first of
# ``Settings.thresholds``), which keeps sharp characters apart.
STRETCH_LOW, STRETCH_HIGH = 2, 98  # percentiles stretched to 0 and 255: the 2% beyond each clip
BLOCK_FRACTION = 0.2  # threshold neighbourhood, in plate heights: spans a stroke, follows the light
THRESHOLD_OFFSET = 30  # grey levels ink is past the local mean (darker, or lighter on dark plates)
GREY_LOW, GREY_HIGH = 5, 95  # percentiles of a character's grey crop stretched to 0 and 255

# Pieces that could be a character (``plausible_chars``), against their own height or the plate's
# width; wider or narrower than the region's characters means against ``char_aspect_range``.
TOUCHING_WIDTH = 2.2  # widest piece kept, in the region's widest characters (touching: split later)
SOLID_BAR_ASPECT = 0.3  # width / height under which a piece may be all ink (a 1 or an I as a bar)
MIN_FILL = 0.12  # ink fraction of its box under which a piece is too sparse for a character
MAX_FILL = 0.85  # ink fraction over which a piece, unless a bar, is a block, band or sticker
FRAME_EDGE_ASPECT = 0.25  # width / height under which a piece at a plate's side is its frame
FRAME_SIDE = 0.04  # fraction of the plate's width, at either side, where such a piece is the frame
NARROW_MIN_FILL = 0.5  # least ink fraction of a piece narrower than the region's characters (a bar)

# The character row (``character_row``): boxes of similar height about one centre line, each box
# in turn the seed that the others are measured against.
ROW_MIN_HEIGHT, ROW_MAX_HEIGHT = 0.78, 1.28  # heights, in the seed's height, of boxes in its row
ROW_MAX_OFFSET = 0.22  # farthest a row box's centre is from the seed's, in the seed's height
MERGE_OVERLAP = 0.6  # overlap, in the narrower box's width, over which boxes are one character

# Mending the row: ends dropped, broken characters joined, touching ones split.
MIN_TRIM_ROW = 4  # fewest pieces of a row whose end pieces may be dropped (``drop_*_ends``)
MIN_TYPICAL_GAP = 2.0  # least typical gap, in pixels: in a tightly packed row a few px are not far
THIN_END_RATIO = 0.25  # width, in median piece widths, below which an end piece is a frame edge
MIN_MEND_ROW = 3  # fewest pieces of a row whose median width may join or split pieces
BROKEN_MAX_GAP = 2  # widest gap, in pixels, between two halves of a character cut at a junction
BROKEN_PIECE_RATIO = 0.75  # width, in median piece widths, that both halves to be joined are under
BROKEN_JOINED_RATIO = 1.25  # widest, in median piece widths, that two halves joined may be
WIDE_RATIO = 1.6  # width, in median piece widths, over which a piece too wide for its height splits
SPLIT_RATIO = 1.4  # width, in typical widths, from which a piece may be touching characters
TYPICAL_ASPECT = 0.7  # most a typical character's width is of its height (0.5-0.7 read alike)
CUT_REACH = 0.3  # farthest, in part widths, a cut moves off an equal division toward least ink

# The character band and the frame around it.
BAND_MIN_INK = 0.12  # ink fraction of a plate row under which it is never in the character band
BAND_MEDIAN_INK = 0.5  # nor, on an inky plate, under this times the median row's ink
BAND_MARGIN = 2  # rows kept above and below the band: some characters reach past its median edges
FRAME_LINE_HEIGHT = 1.4  # band heights down a column from which straight ink is frame, not stroke
FRAME_LINE_WIDTH = 2.5  # band heights along a row from which straight ink is frame (two characters)
FRAME_LINE_GROWTH = 3  # side of the square the frame's runs grow by before erasure: no fringe stays
LINE_MAX_ASPECT = 0.35  # width / height from which a piece is too wide to be a cut vertical line
LINE_REACH = 0.35  # piece heights a line's ink runs on, above or below, past a piece it cut
LINE_PAD = 2  # columns either side of a piece where its line may run on: rectified edges lean
LOOSE_HEIGHT_FACTOR = 0.8  # least character height, against the region's, of a second look


def rectify_transform(quad: Quad, height: int = PLATE_HEIGHT) -> tuple[np.ndarray, int]:
    """The perspective matrix taking ``quad`` to a flat plate ``height`` rows high, and the
    plate's width in pixels (from the quad's own aspect ratio)."""
    src = np.asarray(quad, dtype=np.float32)
    top, bottom, left, right = np.linalg.norm(src[[1, 2, 3, 2]] - src[[0, 3, 0, 1]], axis=1)
    aspect = max(top, bottom) / max(1.0, (left + right) / 2)
    width = max(MIN_PLATE_WIDTH, int(round(height * aspect)))
    dst = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    return cv2.getPerspectiveTransform(src, dst), width


def rectify(gray: np.ndarray, quad: Quad, height: int = PLATE_HEIGHT) -> np.ndarray:
    """The quadrilateral ``quad`` of ``gray`` warped to a flat plate ``height`` rows high."""
    matrix, width = rectify_transform(quad, height)
    return cv2.warpPerspective(gray, matrix, (width, height), flags=cv2.INTER_LINEAR)


def plate_around_chars(
    quad: Quad, char_boxes: list[Box], plate_aspect: float, margin: float = PLATE_MARGIN
) -> Quad:
    """The plate quadrilateral, in scene coordinates, around characters found in the
    rectified ``quad``: as wide as the characters plus ``margin`` on each side, as high as
    the region's plate aspect makes it, centred on the character row."""
    matrix, _ = rectify_transform(quad)
    x0 = min(b[0] for b in char_boxes)
    x1 = max(b[0] + b[2] for b in char_boxes)
    y0 = min(b[1] for b in char_boxes)
    y1 = max(b[1] + b[3] for b in char_boxes)
    width = (x1 - x0) * (1 + 2 * margin)
    height = max(width / plate_aspect, (y1 - y0) * ROW_HEIGHT_ROOM)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    corners = np.array(
        [
            [cx - width / 2, cy - height / 2],
            [cx + width / 2, cy - height / 2],
            [cx + width / 2, cy + height / 2],
            [cx - width / 2, cy + height / 2],
        ],
        np.float32,
    )
    scene = cv2.perspectiveTransform(corners[None], np.linalg.inv(matrix))[0]
    return tuple((float(x), float(y)) for x, y in scene)


def stretch_contrast(
    plate: np.ndarray, low: float = STRETCH_LOW, high: float = STRETCH_HIGH
) -> np.ndarray:
    """``plate`` with its ``low``..``high`` percentiles stretched to 0..255, so that a fixed
    threshold offset means the same on dim and bright plates."""
    counts = cv2.calcHist([plate], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    cumulative = np.cumsum(counts)
    total = cumulative[-1]
    lo = int(np.searchsorted(cumulative, total * low / 100))
    hi = int(np.searchsorted(cumulative, total * high / 100))
    if hi - lo < 1:
        return plate
    table = np.clip((np.arange(256) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return cv2.LUT(plate, table)


def binarize(
    plate: np.ndarray,
    polarity: str,
    block_fraction: float = BLOCK_FRACTION,
    offset: float = THRESHOLD_OFFSET,
):
    """Binary ink mask (255 = ink) of a grey plate, by a local-mean threshold.

    ``block_fraction`` sets the neighbourhood as a fraction of plate height: large enough to
    span a character's stroke and background, small enough to follow uneven lighting.
    """
    height = plate.shape[0]
    block = max(3, int(height * block_fraction) | 1)
    plate = stretch_contrast(plate)
    source = plate if polarity == "light_on_dark" else 255 - plate
    return cv2.adaptiveThreshold(
        source, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, -offset
    )


def component_boxes(binary: np.ndarray) -> list[tuple[Box, int]]:
    """Bounding boxes and pixel areas of the 8-connected components of ``binary``.

    16-bit labels when they fit (8-connected components cannot share a 2 x 2 block): OpenCV
    labels a plate about twice as fast so, with the same components in the same order.
    """
    height, width = binary.shape
    fits = ((height + 1) // 2) * ((width + 1) // 2) < 2**16 - 1
    labels = cv2.CV_16U if fits else cv2.CV_32S
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8, ltype=labels)
    return [((x, y, w, h), area) for x, y, w, h, area in stats[1:n].tolist()]


def plausible_chars(
    components: list[tuple[Box, int]], shape: tuple[int, int], region: RegionConfig
) -> list[Box]:
    """Component boxes whose height, aspect ratio and fill could be a character."""
    height, width = shape
    lo_h, hi_h = region.char_height_fraction
    lo_a, hi_a = region.char_aspect_range
    kept = []
    for (x, y, w, h), area in components:
        if not lo_h * height <= h <= hi_h * height:
            continue
        if w > hi_a * h * TOUCHING_WIDTH:  # may be touching characters; split later
            continue
        fill = area / float(w * h)
        thin = w < SOLID_BAR_ASPECT * h  # a 1 or an I can be a solid bar
        if fill < MIN_FILL or (fill > MAX_FILL and not thin):  # blocks, bands and stickers
            continue
        if x <= 0 or x + w >= width:
            continue
        # the plate's frame
        if w < FRAME_EDGE_ASPECT * h and (
            x < FRAME_SIDE * width or x + w > (1 - FRAME_SIDE) * width
        ):
            continue
        if lo_a * h > w and fill < NARROW_MIN_FILL:
            continue
        kept.append((x, y, w, h))
    return kept


def character_row(boxes: list[Box]) -> list[Box]:
    """The largest set of boxes of similar height on one line: the plate's characters."""
    best: list[Box] = []
    best_area = 0
    for _, sy, _, sh in boxes:
        centre = sy + sh / 2
        row = [
            b
            for b in boxes
            if ROW_MIN_HEIGHT * sh <= b[3] <= ROW_MAX_HEIGHT * sh
            and abs(b[1] + b[3] / 2 - centre) <= ROW_MAX_OFFSET * sh
        ]
        area = sum(b[2] * b[3] for b in row)
        if len(row) > len(best) or (len(row) == len(best) and area > best_area):
            best, best_area = row, area
    return sorted(best, key=lambda b: b[0])


def merge_overlapping(boxes: list[Box]) -> list[Box]:
    """Boxes with pieces of one character (horizontally overlapping) merged into one."""
    merged: list[Box] = []
    for box in sorted(boxes, key=lambda b: b[0]):
        if merged:
            x, y, w, h = merged[-1]
            overlap = x + w - box[0]
            if overlap > MERGE_OVERLAP * min(w, box[2]):
                nx, ny = min(x, box[0]), min(y, box[1])
                nr = max(x + w, box[0] + box[2])
                nb = max(y + h, box[1] + box[3])
                merged[-1] = (nx, ny, nr - nx, nb - ny)
                continue
        merged.append(box)
    return merged


def drop_distant_ends(boxes: list[Box], max_gap: float) -> list[Box]:
    """The row without end pieces farther than ``max_gap`` typical gaps from their neighbour."""
    if max_gap <= 0 or len(boxes) < MIN_TRIM_ROW:
        return boxes
    gaps = [b[0] - (a[0] + a[2]) for a, b in zip(boxes, boxes[1:], strict=False)]
    typical = max(MIN_TYPICAL_GAP, float(median(gaps)))
    start = 1 if gaps[0] > max_gap * typical else 0
    end = len(boxes) - 1 if gaps[-1] > max_gap * typical else len(boxes)
    return boxes[start:end]


def drop_thin_ends(boxes: list[Box], min_ratio: float = THIN_END_RATIO) -> list[Box]:
    """The row without end pieces narrower than ``min_ratio`` times its median piece width.

    Such a sliver at either end of the row is the edge of a frame or holder that the
    character band cut to character height (it reads as a 1, 0 or 4); the thinnest real 1s
    of the US development plates are a quarter of their plate's median width.
    """
    if len(boxes) < MIN_TRIM_ROW:
        return boxes
    thin = min_ratio * float(median(b[2] for b in boxes))
    start = 1 if boxes[0][2] < thin else 0
    end = len(boxes) - 1 if boxes[-1][2] < thin else len(boxes)
    return boxes[start:end]


def join_broken(boxes: list[Box], max_gap: int = BROKEN_MAX_GAP) -> list[Box]:
    """Neighbouring narrow pieces that together make one character's width joined (a thin
    junction, as in K or R, can threshold away and cut a character in two)."""
    if len(boxes) < MIN_MEND_ROW:
        return boxes
    typical = float(median(b[2] for b in boxes))
    joined = [boxes[0]]
    for box in boxes[1:]:
        x, y, w, h = joined[-1]
        gap = box[0] - (x + w)
        width = box[0] + box[2] - x
        narrow = max(w, box[2]) < BROKEN_PIECE_RATIO * typical
        if gap <= max_gap and narrow and width <= BROKEN_JOINED_RATIO * typical:
            top, bottom = min(y, box[1]), max(y + h, box[1] + box[3])
            joined[-1] = (x, top, width, bottom - top)
        else:
            joined.append(box)
    return joined


def split_wide(boxes: list[Box], max_aspect: float) -> list[Box]:
    """Boxes too wide for one character (touching characters) split into equal parts."""
    if not boxes:
        return boxes
    typical = float(median(b[2] for b in boxes))
    result = []
    for x, y, w, h in boxes:
        parts = int(round(w / max(typical, 1.0)))
        if w > max_aspect * h and w > WIDE_RATIO * typical and parts >= 2:
            step = w / parts
            result.extend((int(x + i * step), y, int(step), h) for i in range(parts))
        else:
            result.append((x, y, w, h))
    return result


def cut_characters(
    binary: np.ndarray, boxes: list[Box], plate: np.ndarray | None = None
) -> list[CharImage]:
    """The ink of each box, cropped, as CharImages; with the grey ``plate`` the binary was
    made from, each with its grey crop too (``grey_crop``)."""
    chars = []
    for x, y, w, h in boxes:
        crop = binary[y : y + h, x : x + w]
        if crop.size:
            grey = None if plate is None else grey_crop(plate[y : y + h, x : x + w], crop)
            chars.append(CharImage(np.ascontiguousarray(crop), (x, y, w, h), grey))
    return chars


def grey_crop(grey: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """A character's grey crop with its ink bright and its 5th..95th percentiles stretched to
    0..255, whatever the plate's polarity and contrast.

    Thresholding keeps one bit of each pixel: a stroke thinned by blur or joined to a bolt
    loses what the grey levels still show, so the classifier sees both.
    """
    levels = np.asarray(grey, np.uint8)
    mask = (ink > 0).view(np.uint8)
    on = cv2.countNonZero(mask)
    if 0 < on < mask.size and cv2.mean(levels, mask)[0] < cv2.mean(levels, 1 - mask)[0]:
        levels = 255 - levels
    low, high = percentiles(levels, (GREY_LOW / 100, GREY_HIGH / 100))
    stretched = (levels.astype(np.float32) - low) * (255.0 / max(high - low, 1.0))
    return np.clip(stretched, 0, 255).astype(np.uint8)


def percentiles(levels: np.ndarray, quantiles: tuple[float, ...]) -> list[np.float64]:
    """``np.percentile(levels, 100 * quantiles)`` to the bit (linear interpolation), from one
    partition at the ranks it interpolates between: numpy's generic path costs more than the
    sums on a character's few hundred pixels."""
    n = levels.size
    below = [math.floor((n - 1) * q) for q in quantiles]
    ranks = sorted({r for b in below for r in (b, min(b + 1, n - 1))})
    ordered = np.partition(levels.ravel(), ranks)
    result = []
    for q, rank in zip(quantiles, below, strict=True):
        gamma = (n - 1) * q - rank
        a, b = float(ordered[rank]), float(ordered[min(rank + 1, n - 1)])
        step = b - a  # numpy's lerp: from the nearer end, so that gamma 1 gives b exactly
        result.append(np.float64(b - step * (1 - gamma) if gamma >= 0.5 else a + step * gamma))
    return result


def row_ends(binary: np.ndarray, boxes: list[Box]) -> tuple[float, float]:
    """(edge_cut, end_ink) of a character row ``boxes`` in a ``binary`` plate, looked at in
    the row's band: 1.0 when ink reaches the plate's left or right side (a character cut by
    the quad), and the ink fraction of the pitch beyond the first or last character, the
    larger (a character lost to the frame, or never cut out). Evidence, not a rule: an end
    character lost is the commonest misread."""
    if not boxes:
        return 0.0, 0.0
    top = min(b[1] for b in boxes)
    band = binary[top : max(b[1] + b[3] for b in boxes)] > 0
    width = band.shape[1]
    first, last = boxes[0][0], boxes[-1][0] + boxes[-1][2]
    pitch = max(1, (last - first) // len(boxes))
    gap = max(1, pitch // 4)  # the space between characters is not ink to look for
    left = band[:, max(0, first - pitch) : max(0, first - gap)]
    right = band[:, min(width, last + gap) : min(width, last + pitch)]
    ink = max(left.mean() if left.size else 0.0, right.mean() if right.size else 0.0)
    sides = band[:, [0, width - 1]].mean(axis=0) if band.size else np.zeros(2)
    return float(sides.max() > 0.5), float(ink)


def character_band(boxes: list[Box]) -> tuple[int, int] | None:
    """Top and bottom rows of a character row (median of its boxes), or None below 2 boxes."""
    if len(boxes) < 2:
        return None
    top = int(median(b[1] for b in boxes))
    bottom = int(median(b[1] + b[3] for b in boxes))
    return top, bottom


def band_from_profile(binary: np.ndarray, region: RegionConfig) -> tuple[int, int] | None:
    """The tallest run of rows with ink across much of the plate: where the characters are."""
    height = binary.shape[0]
    ink = (binary > 0).mean(axis=1)
    rows = ink > max(BAND_MIN_INK, BAND_MEDIAN_INK * float(np.median(ink)))
    best, start = None, None
    for i, on in enumerate([*rows.tolist(), False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    if best is None or best[1] - best[0] < region.char_height_fraction[0] * height:
        return None
    return best


def row_boxes(binary: np.ndarray, region: RegionConfig) -> list[Box]:
    """Character boxes of one binary plate: plausible components forming the character row."""
    return row_of(component_boxes(binary), binary.shape, region)


def row_of(
    components: list[tuple[Box, int]], shape: tuple[int, int], region: RegionConfig
) -> list[Box]:
    """The character row among ``components`` (boxes and areas) of a plate of ``shape``."""
    return character_row(merge_overlapping(plausible_chars(components, shape, region)))


def clip_to_band(
    binary: np.ndarray, band: tuple[int, int], margin: int = BAND_MARGIN
) -> np.ndarray:
    """``binary`` with the rows above and below ``band`` cleared.

    Characters often touch a state name, a slogan or the frame; cutting those rows away
    separates them without eroding strokes.
    """
    clipped = binary.copy()
    clipped[: max(0, band[0] - margin)] = 0
    clipped[band[1] + margin :] = 0
    return clipped


def erase_frame_lines(
    binary: np.ndarray,
    band: tuple[int, int],
    vertical: float = FRAME_LINE_HEIGHT,
    horizontal: float = FRAME_LINE_WIDTH,
) -> np.ndarray:
    """``binary`` without straight runs of ink too long to belong to one character.

    A plate's frame (its printed border or the holder's edge) often touches the first or
    last character or the row's top or bottom, and joined to the frame a character fails
    every test of a character. No stroke of a character runs straight for more than the
    character height (``vertical`` times the band's height, down a column) or the width of
    two characters (``horizontal`` times it, along a row), so ink in such runs is the
    frame's.
    """
    size = band[1] - band[0]
    runs = np.zeros_like(binary)
    for kernel in ((1, int(vertical * size)), (int(horizontal * size), 1)):
        if size > 0 and kernel[0] < binary.shape[1] and kernel[1] < binary.shape[0]:
            element = cv2.getStructuringElement(cv2.MORPH_RECT, kernel)
            runs |= cv2.morphologyEx(binary, cv2.MORPH_OPEN, element)
    if not runs.any():
        return binary
    runs = cv2.dilate(runs, np.ones((FRAME_LINE_GROWTH, FRAME_LINE_GROWTH), np.uint8))
    return cv2.bitwise_and(binary, cv2.bitwise_not(runs))


def is_vertical_line(
    binary: np.ndarray, box: Box, reach: float = LINE_REACH, pad: int = LINE_PAD
) -> bool:
    """Whether a thin piece is a cut of a longer vertical line: a frame edge or a bolt strip.

    Cutting the plate to the character band makes a frame edge look like a 1; in the uncut
    mask its ink runs on, unbroken, well above or below the characters, in the piece's
    columns or ``pad`` columns to either side (a rectified frame edge leans a little).
    """
    x, y, w, h = box
    if w >= LINE_MAX_ASPECT * h:
        return False
    columns = binary[:, max(0, x - pad) : x + w + pad].max(axis=1) > 0
    extra = int(reach * h)
    above = columns[max(0, y - extra) : y]
    below = columns[y + h : y + h + extra]
    return (len(above) == extra and above.all()) or (len(below) == extra and below.all())


def ink_cut(binary: np.ndarray, box: Box, at: float, reach: float) -> int:
    """The column of least ink within ``reach`` columns of ``at`` inside ``box`` (the nearest
    to ``at`` among equals): where two touching characters are joined by the least ink."""
    x, y, w, h = box
    lo, hi = max(x + 1, int(round(at - reach))), min(x + w - 1, int(round(at + reach)))
    if hi <= lo:
        return int(round(at))
    ink = (binary[y : y + h, lo:hi] > 0).sum(axis=0).tolist()
    return lo + min(range(len(ink)), key=lambda i: (ink[i], abs(lo + i - at)))


def ink_box(binary: np.ndarray, box: Box) -> Box | None:
    """``box`` shrunk to the ink inside it, or None when it holds none."""
    x, y, w, h = box
    rows, cols = np.nonzero(binary[y : y + h, x : x + w])
    if not len(rows):
        return None
    return (x + int(cols.min()), y + int(rows.min()), int(np.ptp(cols)) + 1, int(np.ptp(rows)) + 1)


def split_at_ink(binary: np.ndarray, box: Box, parts: int) -> list[Box]:
    """``box`` cut into ``parts`` pieces at the columns of least ink near its equal parts,
    each piece shrunk to its ink (a piece without ink is left out)."""
    x, y, w, h = box
    step = w / parts
    cuts = [x] + [ink_cut(binary, box, x + i * step, CUT_REACH * step) for i in range(1, parts)]
    cuts.append(x + w)
    pieces = [ink_box(binary, (a, y, b - a, h)) for a, b in zip(cuts, cuts[1:], strict=False)]
    return [p for p in pieces if p is not None]


def typical_width(boxes: list[Box], aspect: float = TYPICAL_ASPECT) -> float:
    """A row's typical character width: the median piece width, but no more than ``aspect``
    times the median height (0: no bound), since where touching pairs are half the pieces
    their width is the median (980 YTB cut as 98, 0, Y, TB)."""
    width = float(median(b[2] for b in boxes))
    if aspect > 0:
        width = min(width, aspect * float(median(b[3] for b in boxes)))
    return max(1.0, width)


def split_touching(
    binary: np.ndarray,
    boxes: list[Box],
    min_ratio: float = SPLIT_RATIO,
    aspect: float = TYPICAL_ASPECT,
) -> list[Box] | None:
    """The row with each piece over ``min_ratio`` times the typical width (``typical_width``
    with ``aspect``) cut where its ink is thinnest (``split_at_ink``, into as many parts as
    typical widths it spans, at least 2), or None when no piece is that wide.

    Touching characters come out of the components as one wide piece, but so do wide
    characters (M, W) on a plate of narrow ones: width alone cannot tell them apart, so this
    is an alternative cut for the classifier to judge, not a replacement.
    """
    if len(boxes) < MIN_MEND_ROW:
        return None
    typical = typical_width(boxes, aspect)
    if all(b[2] <= min_ratio * typical for b in boxes):
        return None
    result: list[Box] = []
    for box in boxes:
        if box[2] > min_ratio * typical:
            result.extend(split_at_ink(binary, box, max(2, int(round(box[2] / typical)))))
        else:
            result.append(box)
    return result


def segment_plate(
    plate: np.ndarray,
    region: RegionConfig,
    polarity: str = "dark_on_light",
    block_fraction: float = BLOCK_FRACTION,
    offset: float = THRESHOLD_OFFSET,
) -> list[CharImage]:
    """Characters of a rectified grey plate, left to right (empty when none are found)."""
    return segment_plate_cuts(plate, region, polarity, block_fraction, offset)[0]


def segment_plate_cuts(
    plate: np.ndarray,
    region: RegionConfig,
    polarity: str = "dark_on_light",
    block_fraction: float = BLOCK_FRACTION,
    offset: float = THRESHOLD_OFFSET,
    split: bool = False,
    split_aspect: float = TYPICAL_ASPECT,
) -> list[list[CharImage]]:
    """Ways to cut a rectified grey plate into characters, left to right: the plate's pieces
    (empty when none are found), and with ``split``, when some piece is wide enough to be
    touching characters, the same pieces with those split (``split_touching``, its typical
    width bounded by ``split_aspect``)."""
    binary, boxes = plate_boxes(plate, region, polarity, block_fraction, offset)
    cuts = [cut_characters(binary, boxes, plate)]
    split_boxes = split_touching(binary, boxes, aspect=split_aspect) if split else None
    if split_boxes is not None:  # the pieces not split are the whole cut's, cropped once
        known = {c.box: c for c in cuts[0]}
        fresh = [b for b in split_boxes if b not in known]
        known.update((c.box, c) for c in cut_characters(binary, fresh, plate))
        cuts.append([known[b] for b in split_boxes if b in known])
    return cuts


def plate_boxes(
    plate: np.ndarray,
    region: RegionConfig,
    polarity: str = "dark_on_light",
    block_fraction: float = BLOCK_FRACTION,
    offset: float = THRESHOLD_OFFSET,
) -> tuple[np.ndarray, list[Box]]:
    """The binary plate the characters are cut from and their boxes, left to right.

    When the row holds fewer pieces than the region's fewest characters and some component
    is that short (``has_short_pieces``), the pieces are looked for again down to
    ``LOOSE_HEIGHT_FACTOR`` of the region's least character height (``loosened``): a
    candidate drawn around the plate's frame or holder, or around a plate
    with a name strip above its characters, makes every character short against it, and
    the whole row fails the height test together.
    """
    binary = binarize(plate, polarity, block_fraction, offset)
    components = component_boxes(binary)
    found = boxes_in(binary, components, region)
    if len(found[1]) < region.char_count[0] and has_short_pieces(components, plate, region):
        again = boxes_in(binary, components, loosened(region))
        if len(again[1]) > len(found[1]):
            return again
    return found


def has_short_pieces(
    components: list[tuple[Box, int]],
    plate: np.ndarray,
    region: RegionConfig,
    factor: float = LOOSE_HEIGHT_FACTOR,
) -> bool:
    """Whether a component is as short as only the second look admits (without one, that
    look seldom finds more: on the development plates it changed 18 of 6042 cuts)."""
    low = region.char_height_fraction[0] * plate.shape[0]
    return any(factor * low <= h < low for (_, _, _, h), _ in components)


def loosened(region: RegionConfig, factor: float = LOOSE_HEIGHT_FACTOR) -> RegionConfig:
    """``region`` with its least character height (a fraction of the plate's) times ``factor``."""
    low, high = region.char_height_fraction
    return replace(region, char_height_fraction=(low * factor, high))


def boxes_in(
    binary: np.ndarray, components: list[tuple[Box, int]], region: RegionConfig
) -> tuple[np.ndarray, list[Box]]:
    """The binary plate the characters are cut from (``binary`` or it cut to the character
    band) and their boxes in it, left to right; ``components`` are ``binary``'s."""
    boxes = row_of(components, binary.shape, region)
    band = character_band(boxes) or band_from_profile(binary, region)
    if band is not None:
        clipped = clip_to_band(erase_frame_lines(binary, band), band)
        banded = [b for b in row_boxes(clipped, region) if not is_vertical_line(binary, b)]
        if len(banded) >= len(boxes):
            binary, boxes = clipped, banded
    boxes = split_wide(join_broken(boxes), max_aspect=region.char_aspect_range[1])
    return binary, drop_thin_ends(drop_distant_ends(boxes, region.max_end_gap))
