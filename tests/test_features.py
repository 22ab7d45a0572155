import numpy as np
import pytest
from _helpers import shapes_image
from scipy import ndimage as ndi
from skimage import color

from seglab.data import sample_image
from seglab.features import FEATURE_GROUPS, feature_layout, pixel_features, resolve_spatial_weight


def test_lab_equals_skimage():
    img = sample_image("chelsea")[:60, :80]
    X = pixel_features(img, "lab")
    ref = color.rgb2lab(img).reshape(-1, 3)
    np.testing.assert_allclose(X, ref, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_own_lab_conversion_is_skimages_to_the_bit(dtype):
    from seglab.features import rgb_to_lab

    rng = np.random.default_rng(0)
    pixels = np.concatenate([rng.random((500, 3)), [[0, 0, 0], [1, 1, 1], [0.04045, 0.5, 1e-4]]])
    for rgb in (pixels.astype(dtype), sample_image("coffee")[::7, ::7].astype(dtype) / 255):
        ours = rgb_to_lab(rgb)
        assert ours.dtype == dtype
        np.testing.assert_array_equal(ours, color.rgb2lab(rgb))


def test_xy_is_pixel_position_times_weight():
    img = shapes_image(5, 7)
    X = pixel_features(img, "lab+xy", spatial_weight=0.5)
    assert X.shape == (35, 5) and X.dtype == np.float32
    xy = X[:, 3:].reshape(5, 7, 2)
    assert xy[2, 4, 0] == pytest.approx(4 * 0.5) and xy[2, 4, 1] == pytest.approx(2 * 0.5)


def test_auto_spatial_weight_is_25_over_diagonal():
    assert resolve_spatial_weight("auto", (30, 40)) == pytest.approx(25 / 50)
    X = pixel_features(shapes_image(30, 40), "xy", spatial_weight="auto")
    assert X[:, 0].max() == pytest.approx(39 * 0.5)


def test_layout_and_dims():
    spec = "rgb+lab+luv+edison+hsv+gray+xy+grad+texture"
    X = pixel_features(shapes_image(16, 20), spec)
    assert X.shape == (320, sum(FEATURE_GROUPS.values()))
    layout = feature_layout(spec)
    assert [g for g, _ in layout] == spec.split("+")
    assert layout[-1][1].stop == X.shape[1]
    assert np.all(np.isfinite(X))


def test_color_groups_share_the_0_100_scale():
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0] = 255
    X = pixel_features(img, "rgb+gray+hsv")
    assert X[:, :3].max() == pytest.approx(100)
    assert X[0, 3] == pytest.approx(100) and X[1, 3] == pytest.approx(0)


def test_grad_length_is_gradient_magnitude():
    img = sample_image("coffee")[:50, :60]
    X = pixel_features(img, "grad")
    L = color.rgb2lab(img)[:, :, 0]
    ref = ndi.gaussian_gradient_magnitude(L, 1.0, mode="nearest")
    np.testing.assert_allclose(np.hypot(X[:, 0], X[:, 1]), ref.ravel(), rtol=1e-3, atol=1e-3)


def test_texture_is_non_negative_and_separates_stripes_from_flat():
    img = np.full((40, 80), 128, np.uint8)
    img[:, 40:] = np.where((np.arange(40) // 2) % 2 == 0, 30, 220)[None, :]
    T = pixel_features(img, "texture").reshape(40, 80, 9)
    assert T.min() >= 0
    assert T[20, 70].sum() > 10 * T[20, 10].sum()


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 5), np.uint8),
        np.zeros((4, 5), np.uint16),
        np.zeros((4, 5, 3), np.uint8),
        np.zeros((4, 5, 4), np.uint8),
        np.zeros((4, 5, 3), np.float32),
    ],
)
def test_accepts_gray_rgb_rgba_8_16_bit_and_float(image):
    assert pixel_features(image, "lab+xy").shape == (20, 5)


def test_alpha_is_dropped():
    rgb = shapes_image(10, 12)
    rgba = np.concatenate([rgb, np.full((10, 12, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(pixel_features(rgba, "lab+xy"), pixel_features(rgb, "lab+xy"))


def test_16_bit_scales_like_8_bit():
    g8 = (np.arange(20, dtype=np.uint8) * 12).reshape(4, 5)
    g16 = g8.astype(np.uint16) * 257
    np.testing.assert_allclose(pixel_features(g8, "gray"), pixel_features(g16, "gray"), atol=1e-4)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((4, 5, 2), np.uint8), "shape"),
        (np.zeros((2, 4, 5, 3), np.uint8), "shape"),
        (np.zeros((4, 5), np.int32), "dtype"),
        (np.zeros((4, 5), bool), "dtype"),
        (np.full((4, 5), 2.0), r"\[0, 1\]"),
        (np.full((4, 5), np.nan), "NaN"),
        (np.zeros((0, 5), np.uint8), "empty"),
    ],
)
def test_rejects_bad_images(image, match):
    with pytest.raises(ValueError, match=match):
        pixel_features(image, "lab")


@pytest.mark.parametrize(
    "spec, words",
    [("lab+foo", "foo"), ("", "feature"), ("lab+lab", "lab"), ("rgb++xy", "feature")],
)
def test_rejects_bad_specs(spec, words):
    with pytest.raises(ValueError, match=words):
        pixel_features(shapes_image(4, 4), spec)


@pytest.mark.parametrize("w", [-1.0, float("nan"), float("inf"), "big"])
def test_rejects_bad_weights(w):
    with pytest.raises(ValueError, match="spatial_weight"):
        pixel_features(shapes_image(4, 4), "lab+xy", spatial_weight=w)


def test_group_weights_scale_values():
    img = shapes_image(8, 8)
    a = pixel_features(img, "lab+texture")
    b = pixel_features(img, "lab+texture", weights={"texture": 0.5})
    np.testing.assert_allclose(b[:, 3:], 0.5 * a[:, 3:], rtol=1e-6)
    np.testing.assert_array_equal(b[:, :3], a[:, :3])
