"""utils.images: which inputs are converted and which raise (with a message that names the fix)."""

import numpy as np
import pytest

from utils.images import rescale_to_uint8, to_mask, to_rgb_uint8


def test_rgb_uint8_passes_unchanged():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = to_rgb_uint8(image)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("shape", [(6, 8), (6, 8, 1)])
def test_grayscale_is_repeated_to_rgb(shape):
    image = np.arange(48, dtype=np.uint8).reshape(shape)
    out = to_rgb_uint8(image)
    assert out.shape == (6, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], image.reshape(6, 8))


@pytest.mark.parametrize(
    "image, words",
    [
        (np.zeros((6, 8, 4), np.uint8), ["4 channels", "[..., :3]"]),
        (np.zeros((6, 8, 2), np.uint8), ["2 channels"]),
        (np.zeros((3, 6, 8), np.uint8), ["channel-first", "moveaxis"]),
        (np.zeros((6, 8, 3), np.uint16), ["16-bit", "rescale_to_uint8"]),
        (np.zeros((6, 8), np.int32), ["32-bit", "rescale_to_uint8"]),
        (np.full((6, 8), 300.0), ["float64", "300", "rescale_to_uint8"]),
        (np.full((6, 8), np.nan, np.float32), ["NaN", "nan_to_num"]),
        (np.zeros((6, 8), bool), ["bool", "mask"]),
        (np.zeros((2, 3, 4, 5), np.uint8), ["(H, W)"]),
        (np.zeros((1, 8, 3), np.uint8), ["too small"]),
    ],
)
def test_bad_images_raise_with_fix(image, words):
    with pytest.raises(ValueError) as info:
        to_rgb_uint8(image)
    for word in words:
        assert word in str(info.value)


def test_rescale_to_uint8_windows_16bit_and_floats():
    ramp = np.linspace(0, 4095, 100).astype(np.uint16).reshape(10, 10)
    out = rescale_to_uint8(ramp, percentiles=(0, 100))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out.ravel().astype(int)) >= 0)  # monotone mapping
    hu = np.array([[-1000.0, 40.0, 240.0, 3000.0]])
    windowed = rescale_to_uint8(hu, low=40 - 200, high=40 + 200)  # soft-tissue window 40/400
    assert windowed.tolist() == [[0, 128, 255, 255]]
    with_nan = rescale_to_uint8(np.array([[np.nan, 0.0, 1.0]]), low=0, high=1)
    assert with_nan.tolist() == [[0, 0, 255]]
    with pytest.raises(ValueError, match="no finite values"):
        rescale_to_uint8(np.full((2, 2), np.nan))


@pytest.mark.parametrize("values", [[0, 1], [0, 255], [False, True]])
def test_binary_masks_convert_to_bool(values):
    mask = np.array([values, values[::-1]])
    out = to_mask(mask)
    assert out.dtype == bool
    assert out.tolist() == [[False, True], [True, False]]


@pytest.mark.parametrize(
    "mask, shape, words",
    [
        (np.array([[0, 1, 2]]), None, ["label map", "== k"]),
        (np.array([[0.2, 0.7]]), None, ["probabilities", "> 0.5"]),
        (np.array([[np.nan, 1.0]]), None, ["NaN"]),
        (np.zeros((2, 3, 4), bool), None, ["2-D"]),
        (np.zeros((4, 4), bool), (5, 4, 3), ["(4, 4)", "(5, 4)", "match"]),
        (np.array([["a", "b"]]), None, ["dtype"]),
    ],
)
def test_bad_masks_raise(mask, shape, words):
    with pytest.raises(ValueError) as info:
        to_mask(mask, shape=shape)
    for word in words:
        assert word in str(info.value)
