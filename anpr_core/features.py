"""Character descriptors: Block Binary Pixel Sum (BBPS) plus a small HOG, of the binary
character and of its grey crop.

A character image is first normalized to a fixed grid (``char_vectors``); the
``BlockBinaryPixelSum`` transformer turns those rows into the descriptor inside the model's
scikit-learn Pipeline, so the model logged to MLflow takes plain numeric rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from anpr_core.records import CharImage

CHAR_SHAPE = (32, 20)  # rows, columns of a normalized character: divisible by every grid below
DEFAULT_GRIDS = ((4, 4), (8, 5), (16, 10))
GREY_GRID = (8, 5)  # blocks of the grey crop's mean brightness


def normalize_char(image: np.ndarray, shape: tuple[int, int] = CHAR_SHAPE) -> np.ndarray:
    """A binary character stretched to ``shape``, as float32 in 0..1.

    Stretching (rather than padding) keeps every block of the grid on ink for narrow and wide
    characters alike; the lost aspect ratio is kept as a separate feature.
    """
    if image.size == 0:
        return np.zeros(shape, np.float32)
    resized = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return resized.astype(np.float32) / 255.0


def char_vectors(
    chars: Sequence[CharImage], shape: tuple[int, int] = CHAR_SHAPE, grey: bool = False
) -> np.ndarray:
    """Rows of normalized pixels plus the aspect ratio (w / h) of each character, and with
    ``grey`` the normalized grey crop after them (the binary one where a piece has none).

    This is the model's input: ``shape[0] * shape[1] + 1`` float32 columns per character, or
    twice the pixels plus one with ``grey`` (``row_width``).
    """
    pixels = shape[0] * shape[1]
    rows = np.zeros((len(chars), row_width(shape, grey)), np.float32)
    for i, char in enumerate(chars):
        rows[i, :pixels] = normalize_char(char.image, shape).ravel()
        h, w = char.image.shape[:2]
        rows[i, pixels] = w / max(h, 1)
        if grey:
            crop = char.image if char.grey is None else char.grey
            rows[i, pixels + 1 :] = normalize_char(crop, shape).ravel()
    return rows


def row_width(shape: tuple[int, int] = CHAR_SHAPE, grey: bool = False) -> int:
    """Columns of a ``char_vectors`` row."""
    return shape[0] * shape[1] * (2 if grey else 1) + 1


def block_sums(pixels: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Fraction of ink in each block of a ``grid`` (rows, columns) over images (n, H, W)."""
    n, height, width = pixels.shape
    gy, gx = grid
    blocks = pixels.reshape(n, gy, height // gy, gx, width // gx)
    return blocks.mean(axis=(2, 4)).reshape(n, gy * gx)


def hog(pixels: np.ndarray, cell: int = 4, bins: int = 9) -> np.ndarray:
    """Histograms of unsigned gradient orientation per ``cell`` x ``cell`` cell, L2-normalized.

    Written in numpy (OpenCV 5 has no HOGDescriptor) and vectorized over the batch: each
    pixel with a gradient adds its magnitude to its (image, cell, bin), in float32 and in
    raster order, so the sums equal those of a one-hot (n, H, W, bins) array summed per cell
    to the bit (registered models were trained on those); pixels without a gradient add
    nothing, so their orientation is never computed.
    """
    n, height, width = pixels.shape
    gy = np.zeros_like(pixels)
    gx = np.zeros_like(pixels)
    gy[:, 1:-1] = pixels[:, 2:] - pixels[:, :-2]
    gx[:, :, 1:-1] = pixels[:, :, 2:] - pixels[:, :, :-2]
    magnitude = np.hypot(gx, gy).astype(np.float32, copy=False).ravel()
    on = np.flatnonzero(magnitude)
    angle = unsigned(np.arctan2(gy.ravel()[on], gx.ravel()[on]))
    index = np.minimum((angle / np.pi * bins).astype(np.int64), bins - 1)
    n_cells = (height // cell) * (width // cell)
    cells = np.arange(n)[:, None, None] * n_cells + cell_numbers(height, width, cell)
    flat = np.zeros(n * n_cells * bins, np.float32)
    np.add.at(flat, cells.ravel()[on] * bins + index, magnitude[on])
    flat = flat.reshape(n, n_cells * bins)
    return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-6)


def unsigned(angle: np.ndarray) -> np.ndarray:
    """``np.mod(angle, np.pi)`` to the bit for angles in [-pi, pi] (``np.arctan2``'s), at a
    third of its cost: a float modulo is the dearest step of a HOG."""
    half_turn = angle.dtype.type(np.pi)  # pi as np.mod sees it, in the angles' precision
    folded = np.where(angle < 0, angle + half_turn, angle)
    return np.where(np.abs(angle) >= half_turn, angle.dtype.type(0), folded)


@lru_cache(maxsize=32)
def cell_numbers(height: int, width: int, cell: int) -> np.ndarray:
    """Read-only: the number of the ``cell`` x ``cell`` cell (row-major) holding each pixel."""
    rows = np.arange(height) // cell
    columns = np.arange(width) // cell
    numbers = rows[:, None] * (width // cell) + columns[None, :]
    numbers.setflags(write=False)
    return numbers


class BlockBinaryPixelSum(TransformerMixin, BaseEstimator):
    """BBPS descriptor (plus optional HOG, aspect ratio and grey-crop features) of rows from
    ``char_vectors``.

    Parameters
    ----------
    grids : block grids (rows, columns); each block contributes its fraction of ink.
    use_hog : add gradient-orientation histograms, which separate shapes that fill blocks alike
        (e.g. 8 and B).
    use_aspect : add the character's original width / height.
    char_shape : the normalized character shape the rows were made with.
    use_grey : add the grey crop's mean brightness per block of ``GREY_GRID`` and its
        gradient-orientation histograms (rows made with ``char_vectors(..., grey=True)``): the
        strokes as printed, where the threshold may have thinned, broken or joined them.
    """

    def __init__(
        self,
        grids=DEFAULT_GRIDS,
        use_hog=True,
        use_aspect=True,
        char_shape=CHAR_SHAPE,
        use_grey=False,
    ):
        self.grids = grids
        self.use_hog = use_hog
        self.use_aspect = use_aspect
        self.char_shape = char_shape
        self.use_grey = use_grey

    def __setstate__(self, state: dict) -> None:
        super().__setstate__({"use_grey": False, **state})  # pickled before grey features

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=np.float32)
        height, width = self.char_shape
        n = height * width
        pixels = X[:, :n].reshape(-1, height, width)
        parts = [block_sums(pixels, tuple(grid)) for grid in self.grids]
        if self.use_hog:
            parts.append(hog(pixels))
        if self.use_aspect:
            parts.append(X[:, n : n + 1])
        if self.use_grey:
            grey = X[:, n + 1 : 2 * n + 1].reshape(-1, height, width)
            parts += [block_sums(grey, GREY_GRID), hog(grey)]
        return np.hstack(parts).astype(np.float32)
