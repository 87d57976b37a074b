"""From per-character probabilities to plate strings: region patterns, top-k, confidence.

Each pattern of the region is aligned to the segmented pieces by dynamic programming: every
piece either fills the next slot of the pattern (scored by the best allowed class, so a
digit slot turns an O into a 0) or is dropped as "not a character" (scored by the reject
probability). Reads that match no pattern are kept but weighed down by the region's
``pattern_weight``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from anpr_core.classify import REJECT
from anpr_core.config import ALPHABET, RegionConfig, pattern_slots

MAX_DROPPED = 3  # pieces a read may discard as non-characters


@dataclass(frozen=True)
class Read:
    """The best string for one set of pieces, with its evidence."""

    text: str
    score: float  # ranking score: character and reject probabilities times the pattern factor
    confidence: float  # product of the kept characters' probabilities
    char_confidences: tuple[float, ...]
    kept: tuple[int, ...]  # indices of the pieces that became characters
    pattern: str | None
    alternatives: tuple[tuple[str, float], ...]


def _class_columns(classes: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(c, -1) for c in ALPHABET]), index


@lru_cache(maxsize=1024)
def pattern_columns(pattern: str) -> tuple[tuple[int, ...], ...]:
    """The ALPHABET columns allowed at each slot of ``pattern`` (cached: patterns are few)."""
    return tuple(tuple(sorted(ALPHABET.index(c) for c in s)) for s in pattern_slots(pattern))


@lru_cache(maxsize=64)
def glyph_partners(same_glyphs: tuple[str, ...]) -> dict[int, tuple[int, ...]]:
    """ALPHABET column -> the columns printed alike with it, from a region's ``same_glyphs``."""
    partners: dict[int, tuple[int, ...]] = {}
    for group in same_glyphs:
        columns = [ALPHABET.index(c) for c in group]
        for c in columns:
            partners[c] = tuple(o for o in columns if o != c)
    return partners


@lru_cache(maxsize=64)
def glyph_commoners(same_glyphs: tuple[str, ...], glyph_counts: tuple[int, ...]) -> dict[int, int]:
    """ALPHABET column -> the column of its group that training labels use most, from a
    region's learned ``glyph_counts`` (empty without them; a group whose counts tie has none)."""
    commoners: dict[int, int] = {}
    counts = iter(glyph_counts)
    for group in same_glyphs if glyph_counts else ():
        uses = {ALPHABET.index(c): next(counts) for c in group}
        first, second = sorted(uses.values(), reverse=True)[:2]
        if first > second:
            commoners.update(dict.fromkeys(uses, max(uses, key=uses.get)))
    return commoners


def as_commoner(
    cols: list[int], slots: tuple[tuple[int, ...], ...], commoners: dict[int, int]
) -> list[int]:
    """``cols`` with each glyph printed alike read as its commonest character wherever the
    slot allows that one: the shape cannot tell them apart, and labels say which is likelier.
    Only the text changes; which hypothesis wins was decided on the classifier's scores."""
    return [
        commoners[c] if c in commoners and commoners[c] in slot else c
        for c, slot in zip(cols, slots, strict=True)
    ]


class SlotScores:
    """Best class and its log probability per piece, for each set of allowed classes.

    Patterns share few distinct slots (letter, digit, any), so each is computed once per read,
    as plain lists: ``align`` walks them one number at a time. ``partners`` names characters
    printed alike (O and 0): a slot that allows one and not the other scores it by their
    summed probability, since the slot, not the shape, tells them apart.
    """

    def __init__(self, log_p: np.ndarray, partners: dict[int, tuple[int, ...]] | None = None):
        self.log_p = log_p
        self.partners = partners or {}
        self._cache: dict[tuple[int, ...], tuple[list[int], list[float]]] = {}

    def __call__(self, slot: tuple[int, ...]) -> tuple[list[int], list[float]]:
        if slot not in self._cache:
            columns = np.asarray(slot)
            sub = self.log_p[:, columns]
            allowed = set(slot)
            for j, c in enumerate(slot):
                others = [o for o in self.partners.get(c, ()) if o not in allowed]
                if others:  # ``sub`` is a copy: numpy's fancy indexing copies
                    sub[:, j] = np.logaddexp.reduce(self.log_p[:, [c, *others]], axis=1)
            k = sub.argmax(axis=1)
            self._cache[slot] = (columns[k].tolist(), sub[np.arange(len(sub)), k].tolist())
        return self._cache[slot]


def align(
    scores: SlotScores, log_r: np.ndarray, slots: tuple[tuple[int, ...], ...]
) -> tuple[float, list[int], list[int]] | None:
    """Best alignment of pieces to ``slots`` (tuples of allowed class columns).

    Returns (log score, kept piece indices, chosen class column per kept piece), or None when
    the pieces cannot fill the slots within ``MAX_DROPPED`` drops. Only cells on some full
    alignment are filled (``i - j``, the pieces dropped so far, at most ``n - m``), in plain
    Python floats: the table is small and numpy's per-element indexing costs more than the sums.
    """
    n, m = len(log_r), len(slots)
    if m > n or n - m > MAX_DROPPED:
        return None
    reject = np.asarray(log_r, np.float64).tolist()
    best = [scores(slot) for slot in slots]  # (class columns, log probabilities) per slot
    drops = n - m
    table = [[-math.inf] * (m + 1) for _ in range(n + 1)]
    table[0][0] = 0.0
    for i in range(1, n + 1):
        above, row, drop = table[i - 1], table[i], reject[i - 1]
        if i <= drops:
            row[0] = above[0] + drop
        for j in range(max(1, i - drops), min(i, m) + 1):
            row[j] = max(above[j] + drop, above[j - 1] + best[j - 1][1][i - 1])
    if not math.isfinite(table[n][m]):
        return None
    kept, cols = [], []
    i, j = n, m
    while i > 0:
        if j > 0 and table[i][j] == table[i - 1][j - 1] + best[j - 1][1][i - 1]:
            kept.append(i - 1)
            cols.append(best[j - 1][0][i - 1])
            j -= 1
        i -= 1
    return table[n][m], kept[::-1], cols[::-1]


def read_plate(
    probs: np.ndarray, classes: list[str], region: RegionConfig, top_k: int = 5
) -> Read | None:
    """The best read of a plate's pieces (rows of ``probs``), or None when there is none."""
    if len(probs) == 0:
        return None
    columns, index = _class_columns(classes)
    known = columns >= 0
    char_probs = np.zeros((len(probs), len(ALPHABET)))
    char_probs[:, known] = probs[:, columns[known]]
    reject = probs[:, index[REJECT]] if REJECT in index else np.full(len(probs), 1e-3)
    scores = SlotScores(np.log(np.maximum(char_probs, 1e-9)), glyph_partners(region.same_glyphs))
    log_r = np.log(np.maximum(reject, 1e-9))
    any_char = tuple(range(len(ALPHABET)))
    lo, hi = region.char_count
    hypotheses: list[tuple[float, str | None, list[int], list[int]]] = []
    for pattern in region.patterns:
        aligned = align(scores, log_r, pattern_columns(pattern))
        if aligned:
            hypotheses.append((aligned[0], pattern, aligned[1], aligned[2]))
    penalty = np.log(region.pattern_weight)
    for m in range(max(lo, len(probs) - MAX_DROPPED), min(hi, len(probs)) + 1):
        aligned = align(scores, log_r, (any_char,) * m)
        if aligned:
            hypotheses.append((aligned[0] + penalty, None, aligned[1], aligned[2]))
    if not hypotheses:
        return None
    if scores.partners:  # formats reading a glyph both ways tie: the commoner wins, then shape
        counts = dict(zip(region.patterns, region.pattern_counts, strict=False))
        hypotheses.sort(key=lambda h: shape_score(scores.log_p, h[2], h[3]), reverse=True)
        hypotheses.sort(key=lambda h: counts.get(h[1], 0), reverse=True)
        hypotheses.sort(key=lambda h: round(h[0], 9), reverse=True)
    else:
        hypotheses.sort(key=lambda h: h[0], reverse=True)
    log_score, pattern, kept, cols = hypotheses[0]
    rows = char_probs.tolist()
    slots = pattern_columns(pattern) if pattern else (any_char,) * len(cols)
    commoners = glyph_commoners(region.same_glyphs, region.glyph_counts)
    if commoners:
        cols = as_commoner(cols, slots, commoners)
        hypotheses[0] = (log_score, pattern, kept, cols)
    char_conf = tuple(
        _slot_probability(rows[i], c, slot, scores.partners, commoners.get(c) == c)
        for i, c, slot in zip(kept, cols, slots, strict=True)
    )
    text = "".join(ALPHABET[c] for c in cols)
    confidence = float(math.prod(char_conf))
    return Read(
        text=text,
        score=float(np.exp(log_score / len(probs))),
        confidence=confidence,
        char_confidences=char_conf,
        kept=tuple(kept),
        pattern=pattern,
        alternatives=_alternatives(hypotheses, rows, log_r, region, confidence, top_k),
    )


def shape_score(log_p: np.ndarray, kept: list[int], cols: list[int]) -> float:
    """Log probability of the kept pieces' characters as the classifier saw them."""
    return float(sum(log_p[i, c] for i, c in zip(kept, cols, strict=True)))


def _slot_probability(
    row: list[float],
    column: int,
    slot: tuple[int, ...],
    partners: dict[int, tuple[int, ...]],
    commonest: bool = False,
) -> float:
    """The probability a slot gives its chosen character: with the characters printed alike
    that the slot does not allow (a digit slot reads an O as a 0), or all of them where the
    character is its glyph's ``commonest`` reading."""
    return row[column] + sum(row[o] for o in partners.get(column, ()) if commonest or o not in slot)


def _alternatives(
    hypotheses, rows, log_r: np.ndarray, region: RegionConfig, confidence: float, top_k: int
) -> tuple[tuple[str, float], ...]:
    """Top-k distinct whole-plate strings, the read first with its ``confidence``: the best
    string of each hypothesis, then single-character substitutions of the read.

    Every string is scored on the read's own footing, the ranking score of the whole set of
    pieces: its characters' probabilities, the reject probability of each piece it drops, and
    the pattern factor. An alternative's confidence is the read's times the ratio of their
    scores, so a string that keeps fewer characters pays for the pieces it calls non-characters
    and no alternative outranks the read it lost to. ``rows``: the character probabilities."""
    found: dict[str, float] = {}  # text -> log ranking score
    for log_score, _, _, alt_cols in hypotheses:  # best first
        found.setdefault("".join(ALPHABET[c] for c in alt_cols), log_score)
    best_score, _, kept, cols = hypotheses[0]
    dropped = float(sum(log_r[i] for i in range(len(rows)) if i not in kept))
    penalty = math.log(region.pattern_weight)
    for pos, piece in enumerate(kept):
        row = rows[piece]
        runner_up = max((c for c in range(len(row)) if c != cols[pos]), key=row.__getitem__)
        changed = [*cols[:pos], runner_up, *cols[pos + 1 :]]
        text = "".join(ALPHABET[c] for c in changed)
        if text in found:
            continue
        chars = sum(math.log(max(rows[i][c], 1e-9)) for i, c in zip(kept, changed, strict=True))
        found[text] = chars + dropped + (0.0 if _matches(changed, region) else penalty)
    read_text = "".join(ALPHABET[c] for c in cols)
    others = sorted(((t, v) for t, v in found.items() if t != read_text), key=lambda kv: -kv[1])
    scaled = [(t, confidence * math.exp(min(0.0, v - best_score))) for t, v in others]
    return tuple([(read_text, confidence), *scaled][:top_k])


def _matches(cols: list[int], region: RegionConfig) -> bool:
    """Whether the string of ALPHABET columns ``cols`` fits one of the region's patterns."""
    for pattern in region.patterns:
        slots = pattern_columns(pattern)
        if len(slots) == len(cols) and all(c in slot for c, slot in zip(cols, slots, strict=True)):
            return True
    return False
