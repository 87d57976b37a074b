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
