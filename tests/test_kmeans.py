import warnings

import numpy as np
import pytest
from _helpers import blobs, shapes_image
from sklearn.cluster import KMeans as SKKMeans

from seglab.cluster import KMeans, KMeansSegmenter, kmeans_plusplus
from seglab.cluster.kmeans import _transpose, lloyd, lloyd_torch
from seglab.features import pixel_features

# Tolerance against scikit-learn: both compute the same Lloyd iterates; the arithmetic differs
# (scikit-learn uses |x|^2 - 2x.c + |c|^2 in the data's dtype, seglab exact differences in float64),
# so the inertia agrees to 1e-5 relative and labels agree except on ties (none in these data).
RTOL = 1e-5


def _image_features():
    from seglab.data import sample_image

    return pixel_features(sample_image("coffee")[::4, ::4], "lab+xy", spatial_weight=0.1)


@pytest.mark.parametrize("algorithm", ["lloyd", "hamerly"])
@pytest.mark.parametrize("data", ["blobs32", "blobs64", "image"])
def test_same_start_same_result_as_sklearn(algorithm, data):
    if data == "image":
        X = _image_features()
    else:
        X = blobs(seed=3).astype(np.float32 if data == "blobs32" else np.float64)
    k = 6
    init = kmeans_plusplus(X, k, np.random.default_rng(0))
    ours = KMeans(k, init=init, algorithm=algorithm, tol=1e-4).fit(X)
    ref = SKKMeans(k, init=init.astype(X.dtype), n_init=1, algorithm="lloyd", tol=1e-4).fit(X)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=RTOL)
    assert np.mean(ours.labels_ == ref.labels_) > 0.9999
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-4, atol=1e-3)
    assert ours.n_iter_ == ref.n_iter_


def test_inertia_never_rises():
    X = _image_features()
    for seed in range(3):
        km = KMeans(8, algorithm="lloyd", random_state=seed, tol=0).fit(X)
        h = np.array(km.inertia_history_)
        assert len(h) == km.n_iter_ >= 3
        assert np.all(np.diff(h) <= 1e-9 * h[0])
        assert km.inertia_ <= h[-1] * (1 + 1e-12)


@pytest.mark.parametrize("max_iter", [1, 2, 5, 50])
def test_hamerly_is_exact_lloyd(max_iter):
    X = _image_features()
    init = kmeans_plusplus(X, 8, np.random.default_rng(1))
    a = lloyd(X, init, max_iter, 0.0, "lloyd")
    b = lloyd(X, init, max_iter, 0.0, "hamerly")
    np.testing.assert_array_equal(a["labels"], b["labels"])
    np.testing.assert_allclose(a["centers"], b["centers"], rtol=1e-9)
    assert a["n_iter"] == b["n_iter"]


def test_torch_path_matches_compiled_path():
    X = blobs(seed=5).astype(np.float32)
    init = kmeans_plusplus(X, 5, np.random.default_rng(0))
    a = lloyd(X, init, 100, 0.0, "lloyd")
    b = lloyd_torch(X, init, 100, 0.0, device="cpu", chunk=257)
    np.testing.assert_array_equal(a["labels"], b["labels"])
    assert a["inertia"] == pytest.approx(b["inertia"], rel=1e-9)
    assert a["n_iter"] == b["n_iter"]


def test_random_state_makes_runs_reproducible():
    X = blobs(seed=1)
    a = KMeans(5, random_state=7, n_init=3).fit(X)
    b = KMeans(5, random_state=7, n_init=3).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    c = KMeans(5, random_state=np.random.default_rng(7), n_init=3).fit(X)
    np.testing.assert_array_equal(a.labels_, c.labels_)


def test_restarts_keep_the_best_inertia():
    X = blobs(centers=8, spread=2.0, seed=2)
    single = [KMeans(8, init="random", n_init=1, random_state=s).fit(X).inertia_ for s in range(5)]
    best = KMeans(8, init="random", n_init=10, random_state=0).fit(X).inertia_
    assert best <= max(single)


def test_kmeans_plusplus_picks_distinct_data_points():
    X = blobs(seed=4)
    c = kmeans_plusplus(X, 5, np.random.default_rng(0))
    assert len(np.unique(c, axis=0)) == 5
    assert all(np.any(np.all(X == ci, axis=1)) for ci in c)


@pytest.mark.parametrize("algorithm", ["lloyd", "hamerly"])
def test_empty_cluster_is_reseeded_not_nan(algorithm):
    X = blobs(centers=3, seed=6)
    init = np.vstack([X[:3], [[1e6, 1e6, 1e6]]])  # the far centre gets no point
    km = KMeans(4, init=init, algorithm=algorithm).fit(X)
    assert np.all(np.isfinite(km.cluster_centers_))
    assert np.all(np.bincount(km.labels_, minlength=4) > 0)


def test_fewer_distinct_points_than_clusters_warns_without_nan():
    X = np.repeat([[0.0, 0.0], [1.0, 1.0]], 10, axis=0)
    with pytest.warns(UserWarning, match="distinct"):
        km = KMeans(3, random_state=0).fit(X)
    assert np.all(np.isfinite(km.cluster_centers_))
    assert km.inertia_ == pytest.approx(0.0)


def test_predict_and_fit_predict():
    X = blobs(seed=8)
    km = KMeans(5, random_state=0)
    labels = km.fit_predict(X)
    np.testing.assert_array_equal(km.predict(X), labels)
    assert km.score(X) == pytest.approx(-km.inertia_)


@pytest.mark.parametrize("backend", ["c", "numba"])
@pytest.mark.parametrize("exact", [True, False])
def test_float32_near_ties_get_the_exact_label(exact, backend, monkeypatch):
    # points straddling the bisector of two centres, far from the origin (pixel positions):
    # float32 distances cannot order them, the float64 fallback must (in both kernels)
    from seglab.cluster import _kernel_backend, _kmeans_kernels

    if backend == "c" and not _kernel_backend.compiled_available():
        pytest.skip("the C extension was not built")
    monkeypatch.setattr(_kernel_backend, "_choice", backend)
    if not exact:  # without the error bound the check below must fail: the test can fail
        monkeypatch.setattr(_kmeans_kernels, "error_terms", lambda dtype, centers: (0.0, 0.0))
    rng = np.random.default_rng(0)
    centers = np.array([[1000.1, 500.0], [1000.3, 500.0]])
    X = np.column_stack([1000.2 + rng.uniform(-2e-3, 2e-3, 4000), rng.uniform(0, 1000, 4000)])
    X = X.astype(np.float32)
    km = KMeans(2).fit(np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32))
    km.cluster_centers_ = centers
    d2 = ((X.astype(np.float64)[:, None, :] - centers[None]) ** 2).sum(axis=2)
    agree = np.mean(km.predict(X) == d2.argmin(axis=1))
    assert agree == 1.0 if exact else agree < 1.0


def test_variance_does_not_cancel_far_from_zero():
    rng = np.random.default_rng(1)
    X = (1e4 + rng.standard_normal((50_000, 3))).astype(np.float32)
    XT, variance, total = _transpose(X)
    np.testing.assert_array_equal(XT, X.T)
    assert variance == pytest.approx(np.var(X.astype(np.float64), axis=0).mean(), rel=1e-9)
    np.testing.assert_allclose(total, X.astype(np.float64).sum(axis=0), rtol=1e-12)


def test_single_cluster_is_the_mean():
    X = blobs(seed=9)
    km = KMeans(1).fit(X)
    np.testing.assert_allclose(km.cluster_centers_[0], X.mean(axis=0))
    assert km.inertia_ == pytest.approx(((X - X.mean(axis=0)) ** 2).sum())


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        ({"n_clusters": 0}, np.zeros((5, 2)), "n_clusters"),
        ({"n_clusters": 6}, np.zeros((5, 2)), "greater than the number of samples"),
        ({"n_clusters": 2, "init": "nope"}, np.zeros((5, 2)), "init"),
        ({"n_clusters": 2, "init": np.zeros((3, 2))}, np.zeros((5, 2)), "shape"),
        ({"n_clusters": 2, "max_iter": 0}, np.zeros((5, 2)), "max_iter"),
        ({"n_clusters": 2, "device": "tpu"}, np.zeros((5, 2)), "device"),
        ({"n_clusters": 2}, np.full((5, 2), np.nan), "NaN"),
        ({"n_clusters": 2}, np.zeros(5), "2-d"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, X, match):
    with pytest.raises(ValueError, match=match):
        KMeans(**kwargs).fit(X)


def test_segmenter_finds_the_shapes():
    img = shapes_image()
    seg = KMeansSegmenter(3, features="lab", random_state=0, n_init=3)
    labels = seg.fit_predict(img)
    assert labels.shape == img.shape[:2] and labels.max() == 2
    # each painted shape is (almost) one label
    square = labels[10:22, 10:26]
    assert np.mean(square == np.bincount(square.ravel()).argmax()) > 0.99
    assert seg.inertia_ > 0 and seg.n_iter_ >= 1
    np.testing.assert_array_equal(seg.predict(img), labels)


def test_segmenter_min_region_size_keeps_cluster_ids():
    img = shapes_image(seed=3)
    seg = KMeansSegmenter(4, features="lab", min_region_size=30, random_state=0).fit(img)
    assert set(np.unique(seg.labels_)) <= set(range(4))
    assert np.bincount(seg.regions_.ravel()).min() >= 30
    assert seg.n_regions_ == seg.regions_.max() + 1


def test_segmenter_rejects_more_clusters_than_pixels():
    with pytest.raises(ValueError, match="number of pixels"):
        KMeansSegmenter(7).fit(np.zeros((2, 3, 3), np.uint8))


def test_no_warning_on_a_normal_photo():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeansSegmenter(4, random_state=0).fit(shapes_image())


def test_segmenter_shares_kmeans_defaults():
    import inspect

    from seglab.cluster import KMeansSegmenter

    ours = inspect.signature(KMeansSegmenter).parameters
    theirs = inspect.signature(KMeans).parameters
    shared = set(ours) & set(theirs) - {"n_clusters"}
    assert len(shared) == 7
    assert all(ours[p].default == theirs[p].default for p in shared)
    assert (ours["n_clusters"].default, theirs["n_clusters"].default) == (5, 8)
