import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from anpr_core.features import (
    CHAR_SHAPE,
    BlockBinaryPixelSum,
    block_sums,
    char_vectors,
    hog,
    row_width,
    unsigned,
)
from anpr_core.records import CharImage


def test_block_sums_are_ink_fractions():
    pixels = np.zeros((1, 4, 4), np.float32)
    pixels[0, :2, :2] = 1.0
    assert block_sums(pixels, (2, 2)).tolist() == [[1.0, 0.0, 0.0, 0.0]]
    assert block_sums(pixels, (1, 1)).tolist() == [[0.25]]


@settings(max_examples=25, deadline=None)
@given(
    arrays(
        np.uint8,
        st.tuples(st.integers(5, 60), st.integers(2, 40)),
        elements=st.sampled_from([0, 255]),
    )
)
def test_descriptor_shape_and_range(image):
    rows = char_vectors([CharImage(image, (0, 0, image.shape[1], image.shape[0]))])
    assert rows.shape == (1, CHAR_SHAPE[0] * CHAR_SHAPE[1] + 1)
    features = BlockBinaryPixelSum(use_hog=False, use_aspect=False).fit_transform(rows)
    assert features.shape == (1, 16 + 40 + 160)
    assert np.all((features >= 0) & (features <= 1))


def test_hog_is_normalized_and_sees_orientation():
    vertical = np.zeros((1, 32, 20), np.float32)
    vertical[:, :, 8:12] = 1
    horizontal = np.ascontiguousarray(np.zeros((1, 32, 20), np.float32))
    horizontal[:, 14:18, :] = 1
    hv, hh = hog(vertical), hog(horizontal)
    assert np.isclose(np.linalg.norm(hv), 1.0, atol=1e-3)
    assert not np.allclose(hv, hh)


def test_transformer_is_a_clonable_estimator():
    from sklearn.base import clone

    bbps = BlockBinaryPixelSum(grids=((2, 2),), use_hog=True)
    assert clone(bbps).get_params()["grids"] == ((2, 2),)


def one_hot_hog(pixels: np.ndarray, cell: int = 4, bins: int = 9) -> np.ndarray:
    """The straightforward HOG: every pixel's magnitude put into a one-hot orientation axis,
    then summed over each cell."""
    n, height, width = pixels.shape
    gy = np.zeros_like(pixels)
    gx = np.zeros_like(pixels)
    gy[:, 1:-1] = pixels[:, 2:] - pixels[:, :-2]
    gx[:, :, 1:-1] = pixels[:, :, 2:] - pixels[:, :, :-2]
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    index = np.minimum((angle / np.pi * bins).astype(np.int64), bins - 1)
    one_hot = np.zeros((n, height, width, bins), np.float32)
    np.put_along_axis(one_hot, index[..., None], magnitude[..., None], axis=3)
    cells = one_hot.reshape(n, height // cell, cell, width // cell, cell, bins).sum(axis=(2, 4))
    flat = cells.reshape(n, -1)
    return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-6)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda n: arrays(
            st.sampled_from([np.float32, np.float64]),
            (n, 8 * 4, 5 * 4),
            # few levels: many equal neighbours, so flat areas and exact 0/90/180 degree edges
            elements=st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0, 1, width=32),
        )
    )
)
def test_hog_equals_the_one_hot_reference_to_the_bit(pixels):
    assert np.array_equal(hog(pixels), one_hot_hog(pixels))


def _char(image, grey=None) -> CharImage:
    return CharImage(image, (0, 0, image.shape[1], image.shape[0]), grey)


def test_grey_rows_hold_the_grey_crop_after_the_binary_one():
    image = np.zeros((32, 20), np.uint8)
    image[:, 8:12] = 255
    grey = np.full((32, 20), 40, np.uint8)
    rows = char_vectors([_char(image, grey), _char(image)], grey=True)
    pixels = CHAR_SHAPE[0] * CHAR_SHAPE[1]
    assert rows.shape == (2, row_width(grey=True)) == (2, 2 * pixels + 1)
    assert np.array_equal(rows[:, : pixels + 1], np.vstack([char_vectors([_char(image)])] * 2))
    assert np.allclose(rows[0, pixels + 1 :], 40 / 255)
    assert np.array_equal(rows[1, pixels + 1 :], rows[1, :pixels])  # no grey: the binary again


def test_grey_features_follow_the_binary_descriptor():
    image = np.zeros((32, 20), np.uint8)
    image[4:28, 6:14] = 255
    rows = char_vectors([_char(image, np.clip(image, 30, 200))], grey=True)
    binary = BlockBinaryPixelSum().fit_transform(rows)
    both = BlockBinaryPixelSum(use_grey=True).fit_transform(rows)
    assert both.shape[1] == binary.shape[1] + 8 * 5 + (32 // 4) * (20 // 4) * 9
    assert np.array_equal(both[:, : binary.shape[1]], binary)


def test_a_descriptor_pickled_before_grey_features_loads_without_them():
    import pickle

    old = BlockBinaryPixelSum()
    del old.__dict__["use_grey"]  # as pickled by a version trained before grey features
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.get_params()["use_grey"] is False


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        st.sampled_from([np.float32, np.float64]),
        st.integers(1, 300),
        elements=st.sampled_from([-np.pi, np.pi, 0.0, -0.0, 1e-30, -1e-30]) | st.floats(-4, 4),
    )
)
def test_folded_angles_are_numpys_modulo_to_the_bit(angle):
    angle = np.clip(angle, -angle.dtype.type(np.pi), angle.dtype.type(np.pi))
    assert np.array_equal(unsigned(angle), np.mod(angle, np.pi))
