import numpy as np
import pytest
from _helpers import shapes_image
from scipy import ndimage as ndi
from sklearn.cluster import MeanShift as SKMeanShift
from sklearn.cluster import estimate_bandwidth as sk_estimate_bandwidth
from sklearn.datasets import make_blobs

from seglab.cluster import MeanShift, MeanShiftSegmenter, estimate_bandwidth
from seglab.cluster.meanshift import SUPPORT, shift_to_modes
from seglab.features import pixel_features

KERNEL_NAMES = ["flat", "epanechnikov", "gaussian"]


def _weights(kernel, r2, strict=False):
    """Kernel weights; ``strict``: a point on the window's edge is outside (the image path,
    as EDISON), else inside (the generic path, as scikit-learn)."""
    inside = r2 < SUPPORT[kernel] ** 2 if strict else r2 <= SUPPORT[kernel] ** 2
    w = {"flat": np.ones_like(r2), "epanechnikov": 1 - r2, "gaussian": np.exp(-0.5 * r2)}[kernel]
    return np.where(inside, w, 0.0)


def brute_force_modes(P, kernel, max_iter=300, tol=1e-3, product=None):
    """Every point against every point, plain numpy; ``product=k`` splits the columns into a
    spatial part (first k) and a range part with a product kernel, as for images."""
    cur = P.copy()
    active = np.ones(len(P), bool)
    for _ in range(max_iter):
        if not active.any():
            break
        diff = P[None, :, :] - cur[active][:, None, :]
        if product is None:
            w = _weights(kernel, (diff**2).sum(axis=2))
        else:
            ws = _weights(kernel, (diff[:, :, :product] ** 2).sum(axis=2), strict=True)
            wr = _weights(kernel, (diff[:, :, product:] ** 2).sum(axis=2), strict=True)
            w = ws * wr
        new = (w @ P) / w.sum(axis=1, keepdims=True)
        shift = ((new - cur[active]) ** 2).sum(axis=1)
        idx = np.flatnonzero(active)
        cur[idx] = new
        active[idx[shift < tol**2]] = False
    return cur


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_grid_path_equals_brute_force(kernel):
    X, _ = make_blobs(300, centers=3, cluster_std=0.7, random_state=1)
    Xn = X / 1.2
    fast, _, _ = shift_to_modes(Xn, Xn, kernel, 300, 1e-6)
    ref = brute_force_modes(Xn, kernel, tol=1e-6)
    np.testing.assert_allclose(fast, ref, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_image_path_equals_brute_force(kernel):
    img = shapes_image(14, 18, seed=2)
    # powers of two: the reference's normalised distances are then exact at integer offsets
    hs, hr = 4.0, 16.0
    seg = MeanShiftSegmenter(hs, hr, kernel, min_region_size=0, features="lab", tol=1e-6).fit(img)
    lab = pixel_features(img, "lab").astype(np.float32).astype(np.float64)
    yy, xx = np.mgrid[0:14, 0:18]
    P = np.column_stack([yy.ravel() / hs, xx.ravel() / hs, lab / hr])
    ref = brute_force_modes(P, kernel, max_iter=100, tol=1e-6, product=2)
    got = seg.pixel_modes_.reshape(-1, 5)
    got = np.column_stack([got[:, 1] / hs, got[:, 0] / hs, got[:, 2:] / hr])
    np.testing.assert_allclose(got, ref, atol=1e-4)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_every_reported_mode_is_a_fixed_point(kernel):
    img = shapes_image(20, 24, seed=4)
    hs, hr, tol = 4.0, 10.0, 1e-4
    seg = MeanShiftSegmenter(
        hs, hr, kernel, min_region_size=0, features="lab", tol=tol, max_iter=5000
    ).fit(img)
    assert seg.n_iter_ < 5000  # every pixel converged
    lab = pixel_features(img, "lab").astype(np.float32).astype(np.float64)
    yy, xx = np.mgrid[0:20, 0:24]
    P = np.column_stack([yy.ravel() / hs, xx.ravel() / hs, lab / hr])
    modes = seg.pixel_modes_.reshape(-1, 5)
    M = np.column_stack([modes[:, 1] / hs, modes[:, 0] / hs, modes[:, 2:] / hr])
    diff = P[None, :, :] - M[:, None, :]
    w = _weights(kernel, (diff[:, :, :2] ** 2).sum(2), strict=True) * _weights(
        kernel, (diff[:, :, 2:] ** 2).sum(2), strict=True
    )
    mean = (w @ P) / w.sum(axis=1, keepdims=True)
    # one more step moves no mode by more than the stopping tolerance (in bandwidths)
    assert np.sqrt(((mean - M) ** 2).sum(axis=1)).max() < 10 * tol


@pytest.mark.parametrize("bin_seeding", [False, True])
def test_agrees_with_sklearn_on_blobs(bin_seeding):
    X, _ = make_blobs(400, centers=4, cluster_std=0.6, random_state=0)
    ours = MeanShift(bandwidth=1.5, bin_seeding=bin_seeding).fit(X)
    ref = SKMeanShift(bandwidth=1.5, bin_seeding=bin_seeding).fit(X)
    assert len(ours.cluster_centers_) == len(ref.cluster_centers_)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=1e-6)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_array_equal(ours.predict(X[:10]), ref.predict(X[:10]))


def test_cluster_all_false_marks_outliers():
    X, _ = make_blobs(200, centers=2, cluster_std=0.3, random_state=3)
    X = np.vstack([X, [[50.0, 50.0]]])
    ms = MeanShift(bandwidth=1.0, cluster_all=False, seeds=X[:200]).fit(X)
    assert ms.labels_[-1] == -1 and (ms.labels_[:200] >= 0).all()


def test_estimate_bandwidth_matches_sklearn():
    X, _ = make_blobs(300, centers=3, random_state=5)
    assert estimate_bandwidth(X, quantile=0.2) == pytest.approx(
        sk_estimate_bandwidth(X, quantile=0.2)
    )


@pytest.mark.parametrize("min_size", [5, 20, 60])
def test_min_region_size_leaves_no_small_region(min_size):
    img = shapes_image(40, 50, seed=7)
    seg = MeanShiftSegmenter(3, 8, min_region_size=min_size, features="lab").fit(img)
    sizes = np.bincount(seg.labels_.ravel())
    assert sizes.min() >= min_size
    assert seg.labels_.max() == seg.n_regions_ - 1 == len(seg.modes_) - 1
    for r in range(seg.n_regions_):  # regions are connected
        assert ndi.label(seg.labels_ == r)[1] == 1


def test_segmenter_finds_the_shapes_and_filters():
    img = shapes_image(48, 64, seed=1)
    seg = MeanShiftSegmenter().fit(img)
    yy, xx = np.mgrid[0:48, 0:64]
    disc = (yy - 30) ** 2 + (xx - 45) ** 2 < 100
    square = np.zeros_like(disc)
    square[8:24, 8:28] = True
    for part, purity in ((square, 0.99), (disc, 0.8), (~(square | disc), 0.95)):
        counts = np.bincount(seg.labels_[part])
        assert counts.max() / part.sum() >= purity
    assert 3 <= seg.n_regions_ <= 5
    assert seg.filtered_image_.shape == img.shape and seg.filtered_image_.dtype == np.uint8
    # the filtered square is near its painted colour (200, 30, 30)
    assert np.abs(seg.filtered_image_[16, 16].astype(int) - [200, 30, 30]).max() < 12
    x, y = seg.modes_[seg.labels_[16, 16], :2]
    assert 8 <= x <= 28 and 8 <= y <= 24


@pytest.mark.slow
def test_gray_and_group_bandwidths():
    img = shapes_image(30, 30, seed=2)
    g = MeanShiftSegmenter(4, 10, features="gray").fit(img[:, :, 0])
    assert g.filtered_image_.ndim == 2
    m = MeanShiftSegmenter(4, {"lab": 8.0, "grad": 20.0}, features="lab+grad").fit(img)
    assert m.modes_.shape[1] == 2 + 5


def test_tiny_bandwidth_warns_but_returns():
    img = np.random.default_rng(0).integers(0, 255, (10, 10, 3)).astype(np.uint8)
    with pytest.warns(UserWarning, match="own mode"):
        seg = MeanShiftSegmenter(0.5, 0.01, min_region_size=0).fit(img)
    assert seg.n_regions_ == 100


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spatial_bandwidth": 0}, "spatial_bandwidth"),
        ({"spatial_bandwidth": float("nan")}, "spatial_bandwidth"),
        ({"range_bandwidth": -1}, "range_bandwidth"),
        ({"range_bandwidth": float("inf")}, "range_bandwidth"),
        ({"range_bandwidth": {"luv": 6.5, "xy": 1}}, "range_bandwidth"),
        ({"kernel": "triangle"}, "kernel"),
        ({"features": "lab+xy"}, "xy"),
        ({"min_region_size": -3}, "min_region_size"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MeanShiftSegmenter(**kwargs).fit(shapes_image(40, 40))


def test_explosive_bandwidth_says_the_cost():
    big = np.zeros((3000, 3000), np.uint8)
    with pytest.raises(ValueError, match=r"visit about .* lower spatial_bandwidth"):
        MeanShiftSegmenter(spatial_bandwidth=60).fit(big)


def test_empty_image_is_refused():
    with pytest.raises(ValueError, match="empty"):
        MeanShiftSegmenter().fit(np.zeros((0, 4, 3), np.uint8))


@pytest.mark.parametrize("bw", [0, -1, float("nan")])
def test_meanshift_bad_bandwidth(bw):
    with pytest.raises(ValueError, match="bandwidth"):
        MeanShift(bandwidth=bw).fit(np.zeros((5, 2)))


def test_edison_colour_space_matches_its_formulas():
    from seglab.features import edison_luv, edison_rgb

    rgb = np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    luv = edison_luv(rgb)
    np.testing.assert_allclose(luv[0, 0], [100.0, 0.0, 0.0], atol=0.05)  # white: L* 100, no hue
    np.testing.assert_allclose(luv[0, 1], [0.0, 0.0, 0.0], atol=1e-6)
    # no gamma: a mid-grey sRGB value is L* of 0.5 linear (76.07), not of 0.214 (53.4)
    assert abs(edison_luv(np.full((1, 1, 3), 0.5))[0, 0, 0] - 76.07) < 0.05
    r = np.random.default_rng(0).random((8, 8, 3))
    np.testing.assert_allclose(edison_rgb(edison_luv(r)), r, atol=1e-5)


def _ridge(obj, blur=5.0, h=60, w=90):
    """A flat grey wall (left) meets paler flat ground (right) along an edge blurred over about
    ten pixels, with an object on the edge: pixel-to-pixel chaining along the blurred transition
    joined all three into one region (seglab before EDISON's grouping); EDISON keeps them apart."""
    img = np.zeros((h, w, 3))
    img[:, : w // 2] = 120
    img[:, w // 2 :] = 160
    img = ndi.gaussian_filter(img, (blur, blur, 0))
    img[20:40, w // 2 - 4 : w // 2 + 4] = obj
    img = ndi.gaussian_filter(img, (1.0, 1.0, 0))
    img += np.random.default_rng(0).normal(0, 2.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("obj", [(40, 35, 30), (100, 90, 80)])
def test_blurred_edge_keeps_wall_ground_and_object_apart(obj):
    seg = MeanShiftSegmenter(7, 6.5, "flat", 20).fit(_ridge(obj))
    wall, ground, thing = seg.labels_[5, 5], seg.labels_[5, -5], seg.labels_[30, 45]
    assert len({wall, ground, thing}) == 3, seg.n_regions_
    # and no region joins areas whose modes differ by several range bandwidths
    modes = seg.pixel_modes_[:, :, 2:].reshape(-1, 3)
    flat = seg.labels_.ravel()
    for r in range(seg.n_regions_):
        m = modes[flat == r]
        spread = np.sqrt(((m.max(0) - m.min(0)) ** 2).sum())
        assert spread < 3 * 6.5, (r, spread)


@pytest.fixture(scope="module")
def edison(tmp_path_factory):
    """EDISON (Comaniciu & Meer's code) through pymeanshift 0.2.2, built from its sdist with the
    numpy 2 fixes (benchmarks/_edison.py); skipped where the sdist or a compiler is missing."""
    import importlib.util

    from _helpers import REPO

    spec = importlib.util.spec_from_file_location("_edison", REPO / "benchmarks" / "_edison.py")
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    try:
        return helper.build(tmp_path_factory.mktemp("edison"))
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_agrees_with_edison_at_least_as_well_as_its_own_speedup(name, edison):
    from skimage import data, transform
    from sklearn.metrics import adjusted_rand_score

    img = getattr(data, name)()
    img = (transform.resize(img, (107, 160), anti_aliasing=True) * 255).round().astype(np.uint8)
    exact = edison.segment(img, 7, 6.5, 20, speedup_level=0)[1]
    medium = edison.segment(img, 7, 6.5, 20, speedup_level=1)[1]
    ours = MeanShiftSegmenter(7, 6.5, "flat", 20).fit(img).labels_
    target = adjusted_rand_score(exact.ravel(), medium.ravel())
    assert adjusted_rand_score(exact.ravel(), ours.ravel()) >= min(target, 0.98)
    assert adjusted_rand_score(exact.ravel(), ours.ravel()) > 0.95


@pytest.mark.slow
@pytest.mark.parametrize("speedup", [1, 2])
def test_speedups_are_deterministic_and_close_to_exact(speedup):
    from sklearn.metrics import adjusted_rand_score

    from seglab._threads import get_num_threads, set_num_threads
    from seglab.data import sample_image

    img = sample_image("coffee")[::3, ::3]
    exact = MeanShiftSegmenter().fit(img).labels_
    runs = []
    before = get_num_threads()
    try:
        for threads in (1, 2):
            set_num_threads(threads)
            runs.append(MeanShiftSegmenter(speedup=speedup).fit(img).labels_)
    finally:
        set_num_threads(before)
    assert np.array_equal(runs[0], runs[1])  # shared within fixed bands: thread count is moot
    assert adjusted_rand_score(exact.ravel(), runs[0].ravel()) > 0.5
    with pytest.raises(ValueError, match="speedup"):
        MeanShiftSegmenter(speedup=3).fit(img)
