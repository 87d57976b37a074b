"""jobs.storage: decoding images from paths and bytes, with clear errors."""

import cv2
import numpy as np
import pytest

from anpr_core.errors import ImageError
from jobs.storage import load_gray, load_image


def encoded(suffix: str) -> bytes:
    image = np.zeros((30, 40, 3), np.uint8)
    image[:, :20] = (255, 0, 0)
    ok, data = cv2.imencode(suffix, image)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_load_image_decodes_bytes_and_paths_to_bgr(tmp_path, suffix):
    data = encoded(suffix)
    path = tmp_path / f"x{suffix}"
    path.write_bytes(data)
    for source in (data, path, str(path)):
        image = load_image(source)
        assert image.shape == (30, 40, 3) and image.dtype == np.uint8
        assert image[0, 0, 0] > 200 and image[0, 0, 2] < 50  # blue stays in channel 0
    assert load_gray(data).shape == (30, 40)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty"), (b"plain text, not a picture\n", "decode"), (None, "decode")],
)
def test_load_image_refuses_non_images_with_a_reason(tmp_path, content, reason):
    if content is None:
        content = encoded(".jpg")[:40]  # a truncated JPEG
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        load_image(path)
    with pytest.raises(ImageError, match=reason):
        load_gray(content)


def test_load_image_names_a_missing_file_or_a_folder(tmp_path):
    with pytest.raises(ImageError, match="missing"):
        load_image(tmp_path / "absent.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)
