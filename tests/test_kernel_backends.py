"""The compiled C kernels (built with the package) against their numba twins: the same labels,
sums, inertia and regions to the bit, and the colour mean-shift to float32 rounding; and the
default clustering path never imports numba (so there is nothing to compile on a first run)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from _helpers import blobs

from seglab.cluster import KMeans, MeanShiftSegmenter, _kernel_backend, kmeans_plusplus
from seglab.cluster._region_kernels import connect_chained
from seglab.cluster.regions import label_regions

if not _kernel_backend.compiled_available():
    if os.environ.get("CI"):  # CI builds with a compiler: a missing extension is a failure there
        raise AssertionError("seglab.cluster._ckernels was not built")
    pytest.skip("the C extension was not built (no C compiler at install)", allow_module_level=True)


def _both(fn):
    """fn() under each backend: (C result, numba result)."""
    out = []
    for name in ("c", "numba"):
        _kernel_backend.use(name)
        try:
            out.append(fn())
        finally:
            _kernel_backend.use(None)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_features", [1, 2, 5, 9])
def test_kmeans_is_the_same_bits_in_c_and_numba(dtype, n_features):
    rng = np.random.default_rng(n_features)
    # not a multiple of the chunk (16384) or the block (512); far from zero, as pixel positions
    X = (rng.normal(size=(40_003, n_features)) * 50 + 300).astype(dtype)

    def fit():
        init = kmeans_plusplus(X, 7, np.random.default_rng(0))
        km = KMeans(7, init=init, n_init=1, max_iter=60, tol=0).fit(X)
        return init, km.labels_, km.cluster_centers_, km.inertia_, km.n_iter_, km.predict(X[:999])

    c, nb = _both(fit)
    for a, b in zip(c, nb, strict=True):
        np.testing.assert_array_equal(a, b)


def test_lloyd_algorithm_agrees_in_c_and_numba():
    X = blobs(seed=5)

    def fit():
        km = KMeans(6, algorithm="lloyd", random_state=0, n_init=1).fit(X)  # no tie to break
        return km.labels_, km.cluster_centers_, km.inertia_

    (lc, cc, ic), (ln, cn, in_) = _both(fit)
    np.testing.assert_array_equal(lc, ln)  # numba reassociates its sums: centres to rounding
    np.testing.assert_allclose(cc, cn, rtol=1e-12)
    assert ic == pytest.approx(in_, rel=1e-12)


@pytest.mark.parametrize("connectivity", [1, 2])
def test_regions_are_the_same_in_c_and_numba(connectivity):
    rng = np.random.default_rng(connectivity)
    labels = rng.integers(0, 3, size=(61, 47))
    c, nb = _both(lambda: label_regions(labels, connectivity))
    np.testing.assert_array_equal(c[0], nb[0])
    assert c[1] == nb[1]
    values = rng.normal(size=(40, 30, 3)).cumsum(axis=1)
    c, nb = _both(lambda: connect_chained(values, 0.7, True))
    np.testing.assert_array_equal(c[0], nb[0])


@pytest.mark.parametrize(("kernel", "speedup"), [("flat", 0), ("flat", 1), ("flat", 2),
                                                 ("epanechnikov", 0), ("gaussian", 0)])  # fmt: skip
def test_colour_meanshift_agrees_in_c_and_numba(kernel, speedup):
    from seglab.data import sample_image

    image = sample_image("coffee")[::6, ::6]
    hs = 4 if kernel == "gaussian" else 7

    def fit():
        ms = MeanShiftSegmenter(spatial_bandwidth=hs, kernel=kernel, speedup=speedup).fit(image)
        return ms.pixel_modes_, ms.labels_

    (mc, lc), (mn, ln) = _both(fit)
    # numba sums each block into float64 (and reassociates), C keeps float32 sums per lane: the
    # modes agree to float32 rounding (in pixels and colour units), the regions almost everywhere
    # (compared by the adjusted Rand index: one region more renumbers all that follow it)
    from sklearn.metrics import adjusted_rand_score

    assert np.median(np.abs(mc - mn)) < 1e-4
    assert np.quantile(np.abs(mc - mn), 0.99) < 1e-2
    assert adjusted_rand_score(ln.ravel(), lc.ravel()) > 0.98


def test_the_clustering_path_never_imports_numba(tmp_path):
    from PIL import Image

    from seglab.data import sample_image

    path = tmp_path / "photo.png"
    Image.fromarray(sample_image("coffee")[::8, ::8]).save(path)
    code = (
        "import sys\n"
        "from seglab.cli import main\n"
        "for method in ('kmeans', 'meanshift'):\n"
        f"    main(['segment', {str(path)!r}, '--method', method, '--quiet',\n"
        f"          '--out', {str(tmp_path / 'out')!r} + method])\n"
        "assert 'numba' not in sys.modules, 'numba was imported'\n"
    )
    env = {**os.environ, "SEGLAB_KERNELS": "auto"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "outmeanshift" / "photo" / "labels.png").is_file()


def test_backend_choice_is_checked(monkeypatch):
    monkeypatch.setenv("SEGLAB_KERNELS", "fortran")
    with pytest.raises(ValueError, match="SEGLAB_KERNELS must be one of auto, c, numba"):
        _kernel_backend.name()
    monkeypatch.setenv("SEGLAB_KERNELS", "c")
    monkeypatch.setattr(_kernel_backend, "compiled_available", lambda: False)
    with pytest.raises(ImportError, match="was not built"):
        _kernel_backend.name()
    monkeypatch.setenv("SEGLAB_KERNELS", "auto")
    assert _kernel_backend.name() == "numba"
    with pytest.raises(ValueError, match="backend must be one of"):
        _kernel_backend.use("cuda")


@pytest.fixture
def portable_and_fast():
    """Runs fn() with the AVX-512 Hamerly kernel off, then on: (portable, fast)."""
    from seglab.cluster._kernel_backend import fast_kmeans

    was = fast_kmeans()
    if not fast_kmeans(True):
        fast_kmeans(was)
        pytest.skip("this CPU has no AVX-512: only the portable loops run")

    def run(fn):
        out = []
        try:
            for fast in (False, True):
                assert fast_kmeans(fast) == fast
                out.append(fn())
        finally:
            fast_kmeans(was)
        return out

    return run


@pytest.mark.parametrize(("n_clusters", "n_features"), [(2, 1), (8, 5), (16, 3), (5, 8), (17, 5), (8, 9)])  # fmt: skip
def test_fast_hamerly_block_is_the_same_bits_as_the_portable_loops(
    portable_and_fast, n_clusters, n_features
):
    # (17, 5) and (8, 9) are outside the fast kernel's range: they check the fallback
    rng = np.random.default_rng(n_clusters + n_features)
    X = (rng.normal(size=(40_003, n_features)) * 50 + 300).astype(np.float32)
    X[:5000] = np.round(X[:5000] / 20) * 20  # equal points and exact ties between centres
    init = kmeans_plusplus(X, n_clusters, np.random.default_rng(0))

    def fit():
        km = KMeans(n_clusters, init=init, n_init=1, max_iter=80, tol=0).fit(X)
        return km.labels_, km.cluster_centers_, km.inertia_, km.n_iter_

    portable, fast = portable_and_fast(fit)
    _kernel_backend.use("numba")  # and both are numba's bits (its own loops, its own keys)
    try:
        numba = fit()
    finally:
        _kernel_backend.use(None)
    for a, b, c in zip(portable, fast, numba, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("exact", [True, False])
def test_fast_hamerly_block_gives_near_ties_the_exact_label(portable_and_fast, exact, monkeypatch):
    # float32 cannot order these points' two distances (as in test_kmeans's near-tie test, here
    # through the Hamerly step that fit runs, not predict's assignment)
    from seglab.cluster import _kmeans_kernels as K
    from seglab.cluster._kmeans_lloyd import _half_separation, _kernel_centers

    if not exact:  # without the error bound the labels below must be wrong: the test can fail
        monkeypatch.setattr(K, "error_terms", lambda dtype, centers: (0.0, 0.0))
    rng = np.random.default_rng(0)
    centers = np.array([[1000.1, 500.0], [1000.3, 500.0]])
    n = 4096
    X = np.column_stack([1000.2 + rng.uniform(-2e-3, 2e-3, n), rng.uniform(0, 1000, n)])
    XT = np.ascontiguousarray(X.astype(np.float32).T)
    want = ((XT.T.astype(np.float64)[:, None, :] - centers[None]) ** 2).sum(axis=2).argmin(axis=1)

    def step():
        labels = np.zeros(n, dtype=np.int32)
        key = np.full(n, -np.inf, dtype=np.float32)
        cd, R, A = _kernel_centers(XT, centers)
        K.hamerly_step(XT, cd, centers, R, A, labels, key, np.zeros(2), _half_separation(centers))
        return labels, key

    for labels, key in portable_and_fast(step):
        agree = np.mean(labels == want)
        assert agree == 1.0 if exact else agree < 1.0
        if exact:  # the widened bounds of points this close cannot prove their label
            assert np.all(key <= 0)
