"""The value objects passed between pipeline stages: one frozen dataclass per boundary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]  # x, y, width, height in pixels
Quad = tuple[tuple[float, float], ...]  # 4 corners, clockwise from top-left


@dataclass(frozen=True)
class Candidate:
    """A region of a scene that may hold a plate (localize -> segment)."""

    box: Box  # the plate
    quad: Quad  # what is read: the plate, perhaps with a margin
    score: float  # 0..1, how plate-like the region looks before reading it
    polarity: str = "dark_on_light"


@dataclass(frozen=True, eq=False)
class CharImage:
    """One character cut out of a rectified plate (segment -> describe).

    ``image`` is a binary uint8 array (255 = ink) tightly cropped to the character;
    ``box`` is its place in the rectified plate; ``grey`` is the plate's grey crop under the
    same box, contrast-stretched with the ink bright (None where only the binary is known).
    """

    image: np.ndarray
    box: Box
    grey: np.ndarray | None = None


@dataclass(frozen=True)
class PlateRead:
    """One plate found and read in an image (pipeline -> jobs)."""

    text: str
    confidence: float  # 0..1, that the text is right
    detection_score: float  # 0..1, that the region is a plate
    box: Box
    quad: Quad
    char_confidences: tuple[float, ...] = ()
    alternatives: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    region: str = ""
    pattern: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready form, as printed by ``anpr recognize``."""
        return {
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "detection_score": round(self.detection_score, 4),
            "box": list(self.box),
            "quad": [[round(x, 1), round(y, 1)] for x, y in self.quad],
            "char_confidences": [round(c, 4) for c in self.char_confidences],
            "alternatives": [[t, round(c, 4)] for t, c in self.alternatives],
            "region": self.region,
            "pattern": self.pattern,
        }
